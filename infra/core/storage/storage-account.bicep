// One storage account. main.bicep makes three: Functions host storage and the deployment package, job records and
// logs, and job shares; only the last has shared-key access, because ACI mounts Azure Files only with the key.

@description('Name of the storage account.')
param name string

@description('Region of the account.')
param location string

@description('Tags to apply.')
param tags object = {}

@description('Replication. Standard_LRS is the cheapest; use Standard_ZRS or Standard_GRS for more durability.')
param skuName string = 'Standard_LRS'

@description('Blob containers to create.')
param containerNames array = []

@description('Tables to create.')
param tableNames array = []

@description('Azure Files shares to create up front (job workspaces are created at run time).')
param shareNames array = []

@description('Quota of each share created here, in GiB.')
param shareQuotaGiB int = 100

@description('Days deleted blobs, containers and shares can be restored.')
param softDeleteDays int = 7

@description('Whether requests signed with the account key are accepted. Only the job-shares account needs it: ACI mounts Azure Files only with the key.')
param allowSharedKeyAccess bool = false

@description('Refuse public network access except from these IP ranges (and trusted Azure services); empty leaves it open.')
param allowedIpRanges array = []

@description('Whether to restrict public network access to allowedIpRanges.')
param restrictPublicAccess bool = false

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    // Off except on the job-shares account: everything the dispatcher and the Functions host do uses Entra ID.
    allowSharedKeyAccess: allowSharedKeyAccess
    // ACI container groups without a subnet reach Azure Files over the public endpoint.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: restrictPublicAccess ? 'Deny' : 'Allow'
      ipRules: [for range in allowedIpRanges: {
        value: range
        action: 'Allow'
      }]
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in containerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

resource fileService 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    shareDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource shares 'Microsoft.Storage/storageAccounts/fileServices/shares@2023-05-01' = [for shareName in shareNames: {
  parent: fileService
  name: shareName
  properties: {
    shareQuota: shareQuotaGiB
    enabledProtocols: 'SMB'
  }
}]

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output tableEndpoint string = storage.properties.primaryEndpoints.table
output fileEndpoint string = storage.properties.primaryEndpoints.file

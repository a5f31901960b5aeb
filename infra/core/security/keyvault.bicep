// A Key Vault in RBAC mode holding the secrets jobs reference, and the storage account key ACI mounts need.

@description('Name of the vault.')
param name string

@description('Region of the vault.')
param location string

@description('Tags to apply.')
param tags object = {}

@description('Storage account (in this resource group) whose key ACI Azure Files mounts need.')
param storageAccountName string

@description('Name of the secret that holds that key.')
param storageKeySecretName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// ACI's azureFile volume (api-version 2023-05-01) takes the account key; the dispatcher reads it from here at launch.
// The value is set by the deployment itself and never leaves it as an output.
resource storageKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: storageKeySecretName
  properties: {
    contentType: 'Storage account key of ${storageAccountName}'
    value: storage.listKeys().keys[0].value
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri

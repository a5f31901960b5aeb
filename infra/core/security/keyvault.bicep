// A Key Vault in RBAC mode, with soft delete and purge protection. Two are deployed: the dispatcher's own (the storage
// account key ACI's azureFile mounts need, registry passwords), which no job can name, and the job-secrets vault
// (what jobs reference, and the inline values the dispatcher stores for them).

@description('Name of the vault.')
param name string

@description('Region of the vault.')
param location string

@description('Tags to apply.')
param tags object = {}

@description('Whether to refuse public network access except from allowedIpRanges (and trusted Azure services).')
param restrictPublicAccess bool = false

@description('IP ranges (CIDR) allowed when restrictPublicAccess is set.')
param allowedIpRanges array = []

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
      defaultAction: restrictPublicAccess ? 'Deny' : 'Allow'
      ipRules: [for range in allowedIpRanges: {
        value: range
      }]
    }
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri

// The storage account key ACI's azureFile volume (api-version 2023-05-01) needs, put into the dispatcher's own vault,
// where the dispatcher reads it at launch. The value is set by the deployment itself and never leaves it as an output.

@description('The dispatcher\'s own Key Vault (in this resource group).')
param vaultName string

@description('Storage account (in this resource group) whose key ACI Azure Files mounts need.')
param storageAccountName string

@description('Name of the secret that holds that key.')
param storageKeySecretName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource storageKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: storageKeySecretName
  properties: {
    contentType: 'Storage account key of ${storageAccountName}'
    value: storage.listKeys().keys[0].value
  }
}

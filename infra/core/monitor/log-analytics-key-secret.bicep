// The Log Analytics workspace key ACI's diagnostics.logAnalytics needs to send a group's container output there, put
// into the dispatcher's own vault, where the dispatcher reads it at each launch. The value is set by the deployment
// itself and never leaves it as an output.

@description('The dispatcher\'s own Key Vault (in this resource group).')
param vaultName string

@description('Log Analytics workspace (in this resource group) the pools send container logs to.')
param logAnalyticsName string

@description('Name of the secret that holds its key.')
param keySecretName string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource workspaceKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: keySecretName
  properties: {
    contentType: 'Shared key of Log Analytics workspace ${logAnalyticsName}'
    value: workspace.listKeys().primarySharedKey
  }
}

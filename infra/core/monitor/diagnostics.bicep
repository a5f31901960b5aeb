// Diagnostic settings to the Log Analytics workspace: Key Vault audit events (every secret read and write, by whom),
// storage reads, writes and deletes of every service of every account, Service Bus operational and runtime logs,
// and the function app's logs.

@description('Log Analytics workspace the logs go to.')
param logAnalyticsName string

@description('Key Vaults whose AuditEvent logs to send.')
param keyVaultNames array

@description('Storage accounts whose blob, table and file logs to send.')
param storageAccountNames array

@description('Service Bus namespace whose logs to send.')
param serviceBusNamespaceName string

@description('Function app whose logs to send.')
param functionAppName string

var storageCategories = [
  'StorageRead'
  'StorageWrite'
  'StorageDelete'
]

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource vaults 'Microsoft.KeyVault/vaults@2023-07-01' existing = [for name in keyVaultNames: {
  name: name
}]

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [for (name, i) in keyVaultNames: {
  name: 'to-log-analytics'
  scope: vaults[i]
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}]

resource accounts 'Microsoft.Storage/storageAccounts@2023-05-01' existing = [for name in storageAccountNames: {
  name: name
}]

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = [for (name, i) in storageAccountNames: {
  parent: accounts[i]
  name: 'default'
}]

resource tableServices 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = [for (name, i) in storageAccountNames: {
  parent: accounts[i]
  name: 'default'
}]

resource fileServices 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' existing = [for (name, i) in storageAccountNames: {
  parent: accounts[i]
  name: 'default'
}]

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [for (name, i) in storageAccountNames: {
  name: 'to-log-analytics'
  scope: blobServices[i]
  properties: {
    workspaceId: workspace.id
    logs: [for category in storageCategories: {
      category: category
      enabled: true
    }]
  }
}]

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [for (name, i) in storageAccountNames: {
  name: 'to-log-analytics'
  scope: tableServices[i]
  properties: {
    workspaceId: workspace.id
    logs: [for category in storageCategories: {
      category: category
      enabled: true
    }]
  }
}]

resource fileDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [for (name, i) in storageAccountNames: {
  name: 'to-log-analytics'
  scope: fileServices[i]
  properties: {
    workspaceId: workspace.id
    logs: [for category in storageCategories: {
      category: category
      enabled: true
    }]
  }
}]

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusNamespaceName
}

resource serviceBusDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: namespace
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        category: 'OperationalLogs'
        enabled: true
      }
      {
        category: 'RuntimeAuditLogs'
        enabled: true
      }
    ]
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource appDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: functionApp
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
  }
}

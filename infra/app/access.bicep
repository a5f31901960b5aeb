// The data-plane roles one principal needs to run the dispatcher, each scoped to the one resource it concerns.

@description('Principal to grant the roles to.')
param principalId string

@description('ServicePrincipal for a managed identity, User for a developer.')
param principalType string

@description('Host storage account: the Functions host\'s keys, timers and locks, and the deployment package.')
param hostStorageAccountName string

@description('Storage account of job records (Table) and harvested logs (Blob).')
param dataStorageAccountName string

@description('Storage account of job shares and workspaces (Azure Files).')
param sharesStorageAccountName string

@description('Service Bus namespace of the jobs queue and events topic.')
param serviceBusNamespaceName string

@description('The dispatcher\'s own Key Vault: storage account keys and registry passwords.')
param keyVaultName string

@description('The job-secrets Key Vault: what jobs reference, and the inline values stored for them.')
param jobSecretsVaultName string

@description('Application Insights component telemetry goes to.')
param applicationInsightsName string

@description('Resource id of the workspace share manager custom role definition.')
param shareManagerRoleId string

@description('Whether the principal may also write the dispatcher vault\'s secrets (Secrets Officer, for a developer) or only read them (Secrets User).')
param keyVaultWriter bool = false

@description('Whether the principal may write and delete job secrets (Secrets Officer: the app stores inline values there) or only read them.')
param jobSecretsWriter bool = false

@description('Name of the job identity in this resource group the principal may assign to container groups; empty for none.')
param jobIdentityName string = ''

var roles = {
  // Host storage (keys, timer leases, singleton locks, the deployment package); the docs name Owner for host storage.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // The job-logs container.
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  // The jobs table: records and their indexes.
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Files inside workspace shares (OAuth over REST, token_intent backup).
  storageFileDataPrivilegedContributor: '69566ab7-960f-475b-8e7c-b3118f30c6bd'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  managedIdentityOperator: 'f1a07417-d97a-45cb-824c-7a7467783830'
}

var keyVaultRoleId = keyVaultWriter ? roles.keyVaultSecretsOfficer : roles.keyVaultSecretsUser
var jobSecretsRoleId = jobSecretsWriter ? roles.keyVaultSecretsOfficer : roles.keyVaultSecretsUser

var dataRoles = [
  roles.storageTableDataContributor
  roles.storageBlobDataContributor
]

var serviceBusRoles = [
  roles.serviceBusDataSender
  roles.serviceBusDataReceiver
]

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageAccountName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageAccountName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: sharesStorageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusNamespaceName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource jobSecretsVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: jobSecretsVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource jobIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = if (!empty(jobIdentityName)) {
  name: jobIdentityName
}

resource hostStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, principalId, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource dataStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in dataRoles: {
  name: guid(dataStorage.id, principalId, roleId)
  scope: dataStorage
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

resource sharesStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageFileDataPrivilegedContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageFileDataPrivilegedContributor)
  }
}

// Workspaces are one share per job (ws-{jobid}), created and deleted at run time. Share-level operations are
// management operations: with a token they are authorised by Microsoft.Storage/.../fileServices/shares/* actions,
// which no data role holds and Storage Account Contributor holds together with listKeys.
resource shareManager 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, shareManagerRoleId)
  scope: storage
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: shareManagerRoleId
  }
}

resource serviceBusAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in serviceBusRoles: {
  name: guid(serviceBus.id, principalId, roleId)
  scope: serviceBus
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

resource keyVaultAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, principalId, keyVaultRoleId)
  scope: keyVault
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultRoleId)
  }
}

resource jobSecretsAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(jobSecretsVault.id, principalId, jobSecretsRoleId)
  scope: jobSecretsVault
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', jobSecretsRoleId)
  }
}

// Application Insights has local auth disabled: telemetry is accepted from principals holding this role.
resource telemetryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// Giving a container group a user-assigned identity needs .../userAssignedIdentities/*/assign/action on it.
resource jobIdentityOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(jobIdentityName)) {
  name: guid(jobIdentity.id, principalId, roles.managedIdentityOperator)
  scope: jobIdentity
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.managedIdentityOperator)
  }
}

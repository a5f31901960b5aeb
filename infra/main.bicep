// The ACI job dispatcher: one `azd up` (or `az deployment sub create`) into a subscription creates the app's resource
// group with everything the Functions app needs, and one resource group per capacity pool for the container groups.
targetScope = 'subscription'

@minLength(1)
@maxLength(48)
@description('Name of the environment; names the resource groups and seeds the unique suffix of every resource.')
param environmentName string

@minLength(1)
@description('Region of the app and of the default capacity pool.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user or principal, given the same data roles as the app for local development; empty for none.')
param principalId string = ''

@description('Container groups also send their containers\' output to the deployment\'s Log Analytics workspace (ACI diagnostics), its key kept in the dispatcher\'s vault; a pool may set containerLogs: false.')
param containerLogs bool = false

@description('Minutes a capacity pool may stay saturated before its alert fires.')
@minValue(5)
param poolSaturationMinutes int = 30

@description('E-mail addresses the alerts (dead letters, reconciler errors, a saturated pool) go to; empty: portal only.')
param alertEmails array = []

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Capacity pools, each {name, location} plus optional limits (maxGroups, maxCores, createsPer5Min, createsPerHour, paceDeletes, spot, weight). Empty: one pool in the deployment region.')
param pools array = []

@description('Whether to create a user-assigned identity that every job\'s container group gets (and let the app assign it).')
param enableJobIdentity bool = false

@description('Registries (mcr.microsoft.com) or image prefixes (myacr.azurecr.io/team/) jobs may use; * for any.')
param allowedRegistries array = [
  '*'
]

@description('Azure Files shares jobs may mount, as share or account/share.')
param allowedShares array = [
  'datasets'
]

@description('Other storage accounts jobs may mount shares from: account name to the name of the Key Vault secret holding its key.')
param shareAccounts object = {}

@description('Private registries: [{server, identity}] for ACR with a managed identity, or [{server, username, passwordSecret}].')
param registryCredentials array = []

@description('Subnet resource ids to inject job container groups into; empty for public groups.')
param subnetIds array = []

@description('Most vCPU one job may request (a Linux container group takes at most 4).')
param maxCpu int = 4

@description('Most memory one job may request, in GB (a Linux container group takes at most 16).')
param maxMemoryGb int = 16

@description('Longest timeout a job may ask for, in seconds.')
param maxTimeoutSeconds int = 86400

@description('Most tasks one array job may have.')
param maxTasks int = 10000

@description('Timeout of a job that names none, in seconds.')
param defaultTimeoutSeconds int = 3600

@description('Whether job specs may carry secret values inline rather than Key Vault references.')
param allowInlineSecrets bool = false

@description('NCRONTAB (6 fields) of the reconciler\'s timer: how often it runs when idle (while work is active, it wakes itself every few seconds through the wake queue).')
param reconcileSchedule string = '0 * * * * *'

@description('Job-secrets vault names every job may reference: exact names, or prefixes ending in *.')
param secretNames array = [
  '*'
]

@description('More secret names a job may reference by a label of it, e.g. {"team": {"ml": ["ml-*"]}}.')
param secretNamesByLabel object = {}

@description('Refuse public network access to host storage, job records and logs, both Key Vaults and Service Bus, except from allowedIpRanges. See docs/deploy.md: the app then needs virtual network integration.')
param restrictPublicAccess bool = false

@description('IP ranges (CIDR) still allowed when restrictPublicAccess is set, e.g. your build agents.')
param allowedIpRanges array = []

@description('Register the HTTP API in Entra ID (Microsoft Graph Bicep extension; public cloud only; the deployer must be allowed to create app registrations) so that callers sign in with tokens. false: no registration and no tokens, function keys only.')
param registerApi bool = true

@description('Serve every route also under /api/keyed/..., authorized by a function key and acting as keyCaller; false: tokens only.')
param functionKeys bool = true

@description('Who a function-key caller acts as: {name, team, roles} (dispatcher.settings.KeyCaller); {} for the code\'s default, an admin that manages schedules.')
param keyCaller object = {}

@description('Teams by name: {groups: [Entra group object ids], maxCores, maxGroups, weight, identities: {name: user-assigned identity resource id}} (dispatcher.settings.Team). The app gets Managed Identity Operator on each listed identity.')
param teams object = {}

@description('The team each Service Bus queue\'s submissions count against: queue name to team name.')
param queueTeams object = {}

@description('ACI list prices used for per-job cost estimates.')
param prices object = {
  currency: 'USD'
  vcpuSecond: json('0.0000135')
  gbSecond: json('0.0000015')
  spotDiscount: json('0.7')
}

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

var jobsQueueName = 'jobs'
var eventsTopicName = 'job-events'
var jobsTableName = 'jobs'
var logsContainerName = 'job-logs'
var storageKeySecretName = 'storage-account-key'
var logAnalyticsKeySecretName = 'log-analytics-key'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var jobIdentityName = '${abbrs.managedIdentityUserAssignedIdentities}job-${resourceToken}'
// The registration's key in the tenant: resourceToken is unique per subscription, environment and location.
var apiUniqueName = 'aci-dispatcher-${resourceToken}'

// ACI's default quota per subscription and region; a pool's own values override these.
var poolDefaults = {
  maxGroups: 100
  maxCores: 100
  createsPer5Min: 100
  createsPerHour: 300
  paceDeletes: 'hour'
  spot: true
  weight: 1
  containerLogs: containerLogs
}
var defaultPools = [
  {
    name: 'default'
    location: location
  }
]
var jobPools = [for pool in (empty(pools) ? defaultPools : pools): union(poolDefaults, pool)]

// DISPATCHER_POOLS: one entry per pool, in the shape of dispatcher.settings.Pool.
var poolSettings = [for pool in jobPools: {
  name: pool.name
  subscriptionId: subscription().subscriptionId
  resourceGroup: '${abbrs.resourcesResourceGroups}${environmentName}-jobs-${pool.name}'
  location: pool.location
  maxGroups: pool.maxGroups
  maxCores: pool.maxCores
  createsPer5Min: pool.createsPer5Min
  createsPerHour: pool.createsPerHour
  paceDeletes: pool.paceDeletes
  spot: pool.spot
  weight: pool.weight
  containerLogs: (containerLogs && pool.containerLogs) ? {
    workspaceId: monitoring.outputs.logAnalyticsCustomerId
    workspaceResourceId: monitoring.outputs.logAnalyticsId
    keySecret: logAnalyticsKeySecretName
  } : null
}]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

resource poolGroups 'Microsoft.Resources/resourceGroups@2024-03-01' = [for pool in jobPools: {
  name: '${abbrs.resourcesResourceGroups}${environmentName}-jobs-${pool.name}'
  location: pool.location
  tags: union(tags, { 'dispatcher-pool': pool.name })
}]

module appIdentity './core/identity/user-assigned-identity.bicep' = {
  name: 'app-identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}func-${resourceToken}'
    location: location
    tags: tags
  }
}

module jobIdentity './core/identity/user-assigned-identity.bicep' = if (enableJobIdentity) {
  name: 'job-identity'
  scope: rg
  params: {
    name: jobIdentityName
    location: location
    tags: tags
  }
}

module monitoring './core/monitor/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

// Three accounts, because shared-key access is a per-account switch: host storage (the Functions host's keys,
// timers and locks, and the deployment package) and job records and logs, both Entra ID only; and the job shares,
// the only account with shared keys on, because ACI mounts Azure Files only with the account key. A job that
// holds that key reaches shares, and nothing of the host or of the records.
module storage './core/storage/storage-account.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    containerNames: [
      deploymentContainerName
    ]
    allowSharedKeyAccess: false
    restrictPublicAccess: restrictPublicAccess
    allowedIpRanges: allowedIpRanges
  }
}

module dataStorage './core/storage/storage-account.bicep' = {
  name: 'data-storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}d${resourceToken}'
    location: location
    tags: tags
    containerNames: [
      logsContainerName
    ]
    tableNames: [
      jobsTableName
    ]
    allowSharedKeyAccess: false
    restrictPublicAccess: restrictPublicAccess
    allowedIpRanges: allowedIpRanges
  }
}

module sharesStorage './core/storage/storage-account.bicep' = {
  name: 'shares-storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}f${resourceToken}'
    location: location
    tags: tags
    shareNames: [
      'datasets'
    ]
    allowSharedKeyAccess: true
  }
}

module serviceBus './core/messaging/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: '${abbrs.serviceBusNamespaces}${resourceToken}'
    location: location
    tags: tags
    restrictPublicAccess: restrictPublicAccess
    allowedIpRanges: allowedIpRanges
    jobsQueueName: jobsQueueName
    eventsTopicName: eventsTopicName
  }
}

module keyVault './core/security/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    restrictPublicAccess: restrictPublicAccess
    allowedIpRanges: allowedIpRanges
  }
}

module storageKeySecret './core/security/storage-key-secret.bicep' = {
  name: 'storage-key-secret'
  scope: rg
  params: {
    vaultName: keyVault.outputs.name
    storageAccountName: sharesStorage.outputs.name
    storageKeySecretName: storageKeySecretName
  }
}

module logAnalyticsKeySecret './core/monitor/log-analytics-key-secret.bicep' = if (containerLogs) {
  name: 'log-analytics-key-secret'
  scope: rg
  params: {
    vaultName: keyVault.outputs.name
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    keySecretName: logAnalyticsKeySecretName
  }
}

module jobSecretsVault './core/security/keyvault.bicep' = {
  name: 'job-secrets-vault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}j${resourceToken}'
    location: location
    tags: tags
    restrictPublicAccess: restrictPublicAccess
    allowedIpRanges: allowedIpRanges
  }
}

module plan './core/host/flex-consumption-plan.bicep' = {
  name: 'plan'
  scope: rg
  params: {
    name: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
  }
}

module jobRunnerRole './core/security/aci-job-runner-role.bicep' = {
  name: 'aci-job-runner-role'
  params: {
    environmentName: environmentName
  }
}

module shareManagerRole './core/security/workspace-share-role.bicep' = {
  name: 'workspace-share-role'
  params: {
    environmentName: environmentName
  }
}

// The HTTP API's app registration and service principal (Microsoft Graph resources: they live in the tenant, and
// the deployment that creates them is kept in the app's resource group).
module apiRegistration './app/api-registration.bicep' = if (registerApi) {
  name: 'api-registration'
  scope: rg
  params: {
    uniqueName: apiUniqueName
    displayName: 'ACI dispatcher (${environmentName})'
    // The app's default host name is {name}.azurewebsites.net; it cannot come from the app's outputs, which need
    // this registration's client id first.
    dashboardRedirectUris: ['https://${functionAppName}.azurewebsites.net/api/ui/redirect.html']
  }
}

module app './app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    serviceName: 'api'
    planId: plan.outputs.id
    identityId: appIdentity.outputs.id
    identityClientId: appIdentity.outputs.clientId
    storageAccountName: storage.outputs.name
    dataAccountName: dataStorage.outputs.name
    sharesAccountName: sharesStorage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    keyVaultUri: keyVault.outputs.uri
    jobSecretsVaultUri: jobSecretsVault.outputs.uri
    dispatcherSettings: {
      instance: environmentName
      allowedRegistries: allowedRegistries
      allowedShares: allowedShares
      maxCpu: maxCpu
      maxMemoryGb: maxMemoryGb
      maxTimeoutSeconds: maxTimeoutSeconds
      maxTasks: maxTasks
      defaultTimeoutSeconds: defaultTimeoutSeconds
      allowInlineSecrets: allowInlineSecrets
      secretNames: secretNames
      secretNamesByLabel: secretNamesByLabel
      authAudience: registerApi ? apiRegistration.outputs.clientId : ''
      authScope: registerApi ? apiRegistration.outputs.dashboardScope : ''
      functionKeys: functionKeys
      keyCaller: keyCaller
      teams: teams
      queueTeams: queueTeams
      intakeRetrySeconds: 300
      storageAccountKeySecret: storageKeySecretName
      shareAccounts: shareAccounts
      jobIdentity: enableJobIdentity ? jobIdentity.outputs.id : ''
      subnetIds: subnetIds
      registryCredentials: registryCredentials
      pools: poolSettings
      saturationCooldownSeconds: 60
      jobsQueue: serviceBus.outputs.jobsQueueName
      wakeQueue: serviceBus.outputs.wakeQueueName
      eventsTopic: serviceBus.outputs.eventsTopicName
      jobsTable: jobsTableName
      logsContainer: logsContainerName
      reconcileSchedule: reconcileSchedule
      reconcileIntervalSeconds: 5
      tickBudgetSeconds: 240
      armReadsPerTick: 200
      orphanGraceSeconds: 600
      stuckGraceSeconds: 300
      launchGraceSeconds: 60
      retentionDays: 30
      dependencyGraceSeconds: 3600
      prices: prices
    }
  }
}

module alerts './core/monitor/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    location: location
    tags: tags
    namePrefix: environmentName
    poolSaturationMinutes: poolSaturationMinutes
    alertEmails: alertEmails
  }
}

module diagnostics './core/monitor/diagnostics.bicep' = {
  name: 'diagnostics'
  scope: rg
  params: {
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    keyVaultNames: [
      keyVault.outputs.name
      jobSecretsVault.outputs.name
    ]
    storageAccountNames: [
      storage.outputs.name
      dataStorage.outputs.name
      sharesStorage.outputs.name
    ]
    serviceBusNamespaceName: serviceBus.outputs.name
    functionAppName: app.outputs.name
  }
}

module appAccess './app/access.bicep' = {
  name: 'app-access'
  scope: rg
  params: {
    principalId: appIdentity.outputs.principalId
    principalType: 'ServicePrincipal'
    hostStorageAccountName: storage.outputs.name
    dataStorageAccountName: dataStorage.outputs.name
    sharesStorageAccountName: sharesStorage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    keyVaultName: keyVault.outputs.name
    jobSecretsVaultName: jobSecretsVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    shareManagerRoleId: shareManagerRole.outputs.id
    keyVaultWriter: false
    jobSecretsWriter: allowInlineSecrets
    jobIdentityName: enableJobIdentity ? jobIdentityName : ''
  }
}

module developerAccess './app/access.bicep' = if (!empty(principalId)) {
  name: 'developer-access'
  scope: rg
  params: {
    principalId: principalId
    principalType: principalType
    hostStorageAccountName: storage.outputs.name
    dataStorageAccountName: dataStorage.outputs.name
    sharesStorageAccountName: sharesStorage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    keyVaultName: keyVault.outputs.name
    jobSecretsVaultName: jobSecretsVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    shareManagerRoleId: shareManagerRole.outputs.id
    keyVaultWriter: true
    jobSecretsWriter: true
    jobIdentityName: enableJobIdentity ? jobIdentityName : ''
  }
}

// The identities teams' jobs may run as: Managed Identity Operator for the app on each of them, in its own resource
// group (of any subscription), and on nothing else.
@batchSize(1)
module teamIdentities './app/team-identities.bicep' = [for team in items(teams): {
  name: 'team-identities-${uniqueString(environmentName, team.key)}'
  params: {
    identities: contains(team.value, 'identities') ? team.value.identities : {}
    principalId: appIdentity.outputs.principalId
  }
}]

module appPools './app/job-pool.bicep' = [for (pool, i) in jobPools: {
  name: 'job-pool-${pool.name}'
  scope: poolGroups[i]
  params: {
    principalId: appIdentity.outputs.principalId
    principalType: 'ServicePrincipal'
    jobRunnerRoleId: jobRunnerRole.outputs.id
  }
}]

module developerPools './app/job-pool.bicep' = [for (pool, i) in jobPools: if (!empty(principalId)) {
  name: 'job-pool-developer-${pool.name}'
  scope: poolGroups[i]
  params: {
    principalId: principalId
    principalType: principalType
    jobRunnerRoleId: jobRunnerRole.outputs.id
  }
}]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${app.outputs.defaultHostName}'
output APP_IDENTITY_CLIENT_ID string = appIdentity.outputs.clientId
output SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output SERVICEBUS_JOBS_QUEUE string = serviceBus.outputs.jobsQueueName
output SERVICEBUS_EVENTS_TOPIC string = serviceBus.outputs.eventsTopicName
output HOST_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output DATA_STORAGE_ACCOUNT_NAME string = dataStorage.outputs.name
output STORAGE_TABLE_ENDPOINT string = dataStorage.outputs.tableEndpoint
output STORAGE_BLOB_ENDPOINT string = dataStorage.outputs.blobEndpoint
output STORAGE_ACCOUNT_NAME string = sharesStorage.outputs.name
output STORAGE_FILE_ENDPOINT string = sharesStorage.outputs.fileEndpoint
output KEYVAULT_URI string = keyVault.outputs.uri
output JOB_SECRETS_VAULT_URI string = jobSecretsVault.outputs.uri
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output JOB_POOLS string = string(poolSettings)
output JOB_IDENTITY_ID string = enableJobIdentity ? jobIdentity.outputs.id : ''
// Sign-in, for `dispatcher configure` (its --scope and --tenant default to these): the API's client id, the scope the
// CLI asks for ({identifier URI}/.default), and the tenant. Empty client id and scope without registerApi.
output API_CLIENT_ID string = registerApi ? apiRegistration.outputs.clientId : ''
output API_SCOPE string = registerApi ? apiRegistration.outputs.scope : ''
output AUTH_TENANT_ID string = tenant().tenantId

// The dispatcher's Functions app on Flex Consumption: Python 3.11, one user-assigned identity, identity-based
// connections only. Every app setting it gets is listed here, in one object, and tests/infra checks that list
// against dispatcher/settings.py and the bindings in function_app.py.

@description('Name of the function app.')
param name string

@description('Region of the app.')
param location string

@description('Tags to apply; azd-service-name is added here.')
param tags object = {}

@description('Service name in azure.yaml.')
param serviceName string = 'api'

@description('Resource id of the Flex Consumption plan.')
param planId string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity.')
param identityClientId string

@description('Host storage account: the Functions host\'s keys, timers and locks, and the deployment package.')
param storageAccountName string

@description('Storage account of job records (Table) and harvested logs (Blob).')
param dataAccountName string

@description('Storage account of job shares and workspaces (Azure Files), the only one with shared keys on.')
param sharesAccountName string

@description('Blob container the Flex Consumption deployment package is uploaded to.')
param deploymentContainerName string

@description('Application Insights component telemetry goes to.')
param applicationInsightsName string

@description('Service Bus namespace, e.g. sb-abc.servicebus.windows.net.')
param serviceBusFullyQualifiedNamespace string

@description('The dispatcher\'s own Key Vault URI, e.g. https://kv-abc.vault.azure.net/.')
param keyVaultUri string

@description('The job-secrets Key Vault URI: the secrets jobs reference, and the inline values stored for them.')
param jobSecretsVaultUri string

@description('The dispatcher\'s own settings (see main.bicep), turned into DISPATCHER_* app settings here.')
param dispatcherSettings object

@description('Most instances Flex Consumption may scale out to.')
param maximumInstanceCount int = 40

@description('Memory of one instance, in MB (512, 2048 or 4096).')
param instanceMemoryMB int = 2048

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataAccountName
}

resource sharesStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: sharesAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: planId
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }

  // Flex Consumption sets the runtime from functionAppConfig and rejects FUNCTIONS_WORKER_RUNTIME,
  // FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE and the WEBSITE_CONTENT* settings, so none appear here.
  resource appSettings 'config' = {
    name: 'appsettings'
    properties: {
      // Functions host storage, identity-based. No queue service: no trigger or binding uses storage queues.
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
      AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      // The Service Bus trigger's connection (and the dispatcher's own sender), identity-based.
      ServiceBusConnection__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
      ServiceBusConnection__credential: 'managedidentity'
      ServiceBusConnection__clientId: identityClientId
      // Not a credential: with DisableLocalAuth the component only takes telemetry sent with an Entra ID token.
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      // The Python worker configures the Azure Monitor OpenTelemetry distro (requirements.txt) before any invocation
      // and runs each one in the host's trace context; host.json's telemetryMode is OpenTelemetry to match.
      PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
      // The logger whose records go to Application Insights: the dispatcher's (dispatcher and dispatcher.*).
      PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME: 'dispatcher'
      OTEL_SERVICE_NAME: name
      // DefaultAzureCredential picks the user-assigned identity by this client id.
      AZURE_CLIENT_ID: identityClientId
      // The dispatcher (dispatcher/settings.py).
      DISPATCHER_CREDENTIAL: 'azure'
      DISPATCHER_INSTANCE: dispatcherSettings.instance
      DISPATCHER_ALLOWED_REGISTRIES: string(dispatcherSettings.allowedRegistries)
      DISPATCHER_ALLOWED_SHARES: string(dispatcherSettings.allowedShares)
      DISPATCHER_MAX_CPU: string(dispatcherSettings.maxCpu)
      DISPATCHER_MAX_MEMORY_GB: string(dispatcherSettings.maxMemoryGb)
      DISPATCHER_MAX_TIMEOUT_SECONDS: string(dispatcherSettings.maxTimeoutSeconds)
      DISPATCHER_MAX_TASKS: string(dispatcherSettings.maxTasks)
      DISPATCHER_DEFAULT_TIMEOUT_SECONDS: string(dispatcherSettings.defaultTimeoutSeconds)
      DISPATCHER_ALLOW_INLINE_SECRETS: string(dispatcherSettings.allowInlineSecrets)
      DISPATCHER_SECRET_NAMES: string(dispatcherSettings.secretNames)
      DISPATCHER_SECRET_NAMES_BY_LABEL: string(dispatcherSettings.secretNamesByLabel)
      // Sign-in: v2 tokens of the API's registration (audience: its client id), issued by the tenant's authority
      // (loginEndpoint ends with a slash: https://login.microsoftonline.com/ in the public cloud).
      DISPATCHER_AUTH_TENANT_ID: tenant().tenantId
      DISPATCHER_AUTH_AUDIENCE: dispatcherSettings.authAudience
      DISPATCHER_AUTH_SCOPE: dispatcherSettings.authScope
      DISPATCHER_AUTH_AUTHORITY: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
      DISPATCHER_FUNCTION_KEYS: string(dispatcherSettings.functionKeys)
      DISPATCHER_KEY_CALLER: string(dispatcherSettings.keyCaller)
      DISPATCHER_TEAMS: string(dispatcherSettings.teams)
      DISPATCHER_QUEUE_TEAMS: string(dispatcherSettings.queueTeams)
      DISPATCHER_INTAKE_RETRY_SECONDS: string(dispatcherSettings.intakeRetrySeconds)
      DISPATCHER_CLOUD: environment().name
      DISPATCHER_STORAGE_ACCOUNT: sharesStorage.name
      DISPATCHER_DATA_ACCOUNT: dataStorage.name
      DISPATCHER_STORAGE_ACCOUNT_KEY_SECRET: dispatcherSettings.storageAccountKeySecret
      DISPATCHER_SHARE_ACCOUNTS: string(dispatcherSettings.shareAccounts)
      DISPATCHER_JOB_IDENTITY: dispatcherSettings.jobIdentity
      DISPATCHER_SUBNET_IDS: string(dispatcherSettings.subnetIds)
      DISPATCHER_REGISTRY_CREDENTIALS: string(dispatcherSettings.registryCredentials)
      DISPATCHER_POOLS: string(dispatcherSettings.pools)
      DISPATCHER_SATURATION_COOLDOWN_SECONDS: string(dispatcherSettings.saturationCooldownSeconds)
      DISPATCHER_ARM_ENDPOINT: environment().resourceManager
      DISPATCHER_KEYVAULT_URL: keyVaultUri
      DISPATCHER_JOB_SECRETS_VAULT_URL: jobSecretsVaultUri
      DISPATCHER_TABLE_ENDPOINT: dataStorage.properties.primaryEndpoints.table
      DISPATCHER_BLOB_ENDPOINT: dataStorage.properties.primaryEndpoints.blob
      DISPATCHER_FILE_ENDPOINT: sharesStorage.properties.primaryEndpoints.file
      DISPATCHER_JOBS_QUEUE: dispatcherSettings.jobsQueue
      DISPATCHER_WAKE_QUEUE: dispatcherSettings.wakeQueue
      DISPATCHER_EVENTS_TOPIC: dispatcherSettings.eventsTopic
      DISPATCHER_JOBS_TABLE: dispatcherSettings.jobsTable
      DISPATCHER_LOGS_CONTAINER: dispatcherSettings.logsContainer
      DISPATCHER_RECONCILE_SCHEDULE: dispatcherSettings.reconcileSchedule
      // While work is active the reconciler wakes itself (scheduled messages on the wake queue) this often.
      DISPATCHER_WAKE: 'true'
      DISPATCHER_RECONCILE_INTERVAL_SECONDS: string(dispatcherSettings.reconcileIntervalSeconds)
      DISPATCHER_TICK_BUDGET_SECONDS: string(dispatcherSettings.tickBudgetSeconds)
      DISPATCHER_ARM_READS_PER_TICK: string(dispatcherSettings.armReadsPerTick)
      // The share of the subscription's ARM read bucket the reconciler may spend; the rest is others'.
      DISPATCHER_ARM_READ_SHARE: '0.8'
      // Each running group is read at least this often (seconds); new, overdue and cancelled ones every run.
      DISPATCHER_SWEEP_SECONDS: '10'
      // Recovery, dependants, schedules, usage, purge and the queue's metrics: every 30 s, not every run.
      DISPATCHER_UPKEEP_SECONDS: '30'
      DISPATCHER_ORPHAN_GRACE_SECONDS: string(dispatcherSettings.orphanGraceSeconds)
      DISPATCHER_STUCK_GRACE_SECONDS: string(dispatcherSettings.stuckGraceSeconds)
      DISPATCHER_LAUNCH_GRACE_SECONDS: string(dispatcherSettings.launchGraceSeconds)
      DISPATCHER_RETENTION_DAYS: string(dispatcherSettings.retentionDays)
      DISPATCHER_DEPENDENCY_GRACE_SECONDS: string(dispatcherSettings.dependencyGraceSeconds)
      DISPATCHER_PRICES: string(dispatcherSettings.prices)
    }
  }
}

// Code is deployed with an Entra ID token (azd, az functionapp deploy); no publishing passwords.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = functionApp.id
output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName

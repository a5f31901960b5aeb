// A Service Bus namespace reachable only with Entra ID, with the jobs queue and the events topic.

@description('Name of the namespace.')
param name string

@description('Region of the namespace.')
param location string

@description('Tags to apply.')
param tags object = {}

@description('Name of the queue of submitted jobs.')
param jobsQueueName string

@description('Name of the queue of the reconciler\'s wake-ups.')
param wakeQueueName string = 'wake'

@description('Name of the topic of job lifecycle events.')
param eventsTopicName string

@description('Name of the example subscription on the events topic.')
param eventsSubscriptionName string = 'all-events'

@description('Deliveries of one job message before it is dead-lettered.')
param maxDeliveryCount int = 10

@description('Whether to refuse public network access except from allowedIpRanges (and trusted Azure services).')
param restrictPublicAccess bool = false

@description('IP ranges (CIDR) allowed when restrictPublicAccess is set.')
param allowedIpRanges array = []

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

// The IP firewall (Standard and Premium tiers); virtual network rules and private endpoints need Premium.
resource networkRules 'Microsoft.ServiceBus/namespaces/networkRuleSets@2022-10-01-preview' = if (restrictPublicAccess) {
  parent: namespace
  name: 'default'
  properties: {
    publicNetworkAccess: 'Enabled'
    defaultAction: 'Deny'
    trustedServiceAccessEnabled: true
    ipRules: [for range in allowedIpRanges: {
      ipMask: range
      action: 'Allow'
    }]
  }
}

resource jobsQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: jobsQueueName
  properties: {
    // The launch trigger holds the lock while it validates the job, records it (ETag-conditional Table writes) and
    // PUTs the container group; ARM answers the PUT with 201 and a long-running operation, so the worst case is a
    // few throttled ARM retries (Retry-After) plus Table retries: well under 2 minutes. The host renews the lock
    // (host.json maxAutoLockRenewalDuration 00:05:00) before it expires, so PT2M is the renewal interval's headroom,
    // not the limit of a run; Service Bus allows at most PT5M.
    lockDuration: 'PT2M'
    maxDeliveryCount: maxDeliveryCount
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
    requiresSession: false
    defaultMessageTimeToLive: 'P14D'
    deadLetteringOnMessageExpiration: true
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}

// The reconciler's wake-ups: each run that leaves work active schedules a message for its next run (a few seconds
// later), named after that moment; duplicate detection folds the requests for one moment into one run. Nothing in
// it matters once delivered or expired: no dead-lettering.
resource wakeQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: wakeQueueName
  properties: {
    lockDuration: 'PT5M'
    maxDeliveryCount: 1
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    requiresSession: false
    defaultMessageTimeToLive: 'PT10M'
    deadLetteringOnMessageExpiration: false
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}

resource eventsTopic 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: namespace
  name: eventsTopicName
  properties: {
    defaultMessageTimeToLive: 'P14D'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}

resource eventsSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: eventsTopic
  name: eventsSubscriptionName
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: maxDeliveryCount
    defaultMessageTimeToLive: 'P7D'
    deadLetteringOnMessageExpiration: true
    deadLetteringOnFilterEvaluationExceptions: true
  }
}

output id string = namespace.id
output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output jobsQueueName string = jobsQueue.name
output wakeQueueName string = wakeQueue.name
output eventsTopicName string = eventsTopic.name

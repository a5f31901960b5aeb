// Alerts on the dispatcher's own metrics (dispatcher/service/telemetry.py), which the Functions worker exports to
// Application Insights through OpenTelemetry; workspace-based, they land in the Log Analytics table AppMetrics,
// one row per metric and export interval (Name, Max, Sum, ItemCount, Properties holding the attributes).

@description('Log Analytics workspace of the Application Insights component the metrics are sent to.')
param logAnalyticsName string

@description('Region of the rules.')
param location string

@description('Tags to apply.')
param tags object = {}

@description('Minutes a pool may stay saturated (groups or cores at its limit) before the alert fires.')
@minValue(5)
param poolSaturationMinutes int = 30

@description('E-mail addresses told when an alert fires; empty: the alerts show in the portal only.')
param alertEmails array = []

@description('Prefix of the rule names.')
param namePrefix string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmails)) {
  name: '${namePrefix}-alerts'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'dispatcher'
    enabled: true
    emailReceivers: [for (email, i) in alertEmails: {
      name: 'email-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
  }
}

var rules = [
  {
    name: 'dead-letters'
    description: 'Submissions reached the jobs queue\'s dead-letter queue: after ten deliveries of retried transient errors, or unreadable. Replay them with dispatcher dlq replay once the cause is gone.'
    severity: 1
    window: 'PT15M'
    query: 'AppMetrics | where Name == "dispatcher.queue.dead_letters" | summarize value = max(Max)'
  }
  {
    name: 'reconciler-errors'
    description: 'Reconciler steps failed (each was contained and the run went on); the function\'s logs name each one.'
    severity: 2
    window: 'PT15M'
    query: 'AppMetrics | where Name == "dispatcher.reconcile.failures" | summarize value = sum(Sum)'
  }
  {
    name: 'pool-saturated'
    description: 'A capacity pool has had its groups or cores at its limit for ${poolSaturationMinutes} minutes: jobs wait. Raise the ACI quota or add a pool (docs/deploy.md).'
    severity: 2
    window: 'PT${poolSaturationMinutes}M'
    // Saturated all the time: the lowest utilisation of each pool in the window is still 1.
    query: 'AppMetrics | where Name == "dispatcher.pool.utilization" | extend pool = tostring(Properties.pool) | summarize bins = dcount(bin(TimeGenerated, 1m)), low = min(Max) by pool, tostring(Properties.resource) | where bins >= ${poolSaturationMinutes} * 3 / 4 | summarize value = max(low)'
  }
]

resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for rule in rules: {
  name: '${namePrefix}-${rule.name}'
  location: location
  tags: tags
  properties: {
    displayName: '${namePrefix}: ${rule.name}'
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      workspace.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: rule.window
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'value'
          operator: rule.name == 'pool-saturated' ? 'GreaterThanOrEqual' : 'GreaterThan'
          threshold: rule.name == 'pool-saturated' ? 1 : 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: empty(alertEmails) ? [] : [
        actionGroup.id
      ]
    }
  }
}]

output ruleNames array = [for (rule, i) in rules: alerts[i].name]

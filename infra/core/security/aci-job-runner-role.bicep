// A custom role that lets the dispatcher run container groups and nothing else: create, read, stop, delete, logs,
// quota. Never exec or attach. Groups injected into subnets (subnetIds) also need
// Microsoft.Network/virtualNetworks/subnets/join/action on those subnets, granted where the network lives (docs/deploy.md).
targetScope = 'subscription'

@description('Environment name; with the subscription it makes the role name (unique per tenant) and id unique.')
param environmentName string

var roleName = 'ACI job runner (${environmentName}-${take(uniqueString(subscription().id), 6)})'

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'aci-job-runner')
  properties: {
    roleName: roleName
    description: 'Create, read, stop and delete container groups, read their logs and the ACI quota usage.'
    type: 'CustomRole'
    permissions: [
      {
        // Exactly the calls the dispatcher makes (dispatcher/adapters/azure/aci.py): create (write), get and list
        // (read), delete, stop, container logs, quota usage, and polling the long-running operations. Not
        // containerGroups/*: that includes containers/exec/action and attach/action, a shell in any job.
        actions: [
          'Microsoft.ContainerInstance/containerGroups/read'
          'Microsoft.ContainerInstance/containerGroups/write'
          'Microsoft.ContainerInstance/containerGroups/delete'
          'Microsoft.ContainerInstance/containerGroups/stop/action'
          'Microsoft.ContainerInstance/containerGroups/containers/logs/read'
          'Microsoft.ContainerInstance/locations/usages/read'
          'Microsoft.ContainerInstance/locations/operationResults/read'
          'Microsoft.ContainerInstance/locations/operations/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    // Assigned per pool resource group; declared assignable in the subscription so that pools can be added later.
    assignableScopes: [
      subscription().id
    ]
  }
}

output id string = role.id
output roleDefinitionId string = role.name

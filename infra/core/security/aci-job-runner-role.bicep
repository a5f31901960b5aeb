// A custom role that lets the dispatcher run container groups and nothing else: create, read, delete, logs, quota.
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
        actions: [
          'Microsoft.ContainerInstance/containerGroups/*'
          'Microsoft.ContainerInstance/containerGroups/containers/logs/read'
          'Microsoft.ContainerInstance/locations/usages/read'
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

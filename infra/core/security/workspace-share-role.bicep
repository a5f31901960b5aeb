// A custom role to create and delete Azure Files shares (job workspaces) without reading the account keys.
targetScope = 'subscription'

@description('Environment name; with the subscription it makes the role name (unique per tenant) and id unique.')
param environmentName string

var roleName = 'Workspace share manager (${environmentName}-${take(uniqueString(subscription().id), 6)})'

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'workspace-share-manager')
  properties: {
    roleName: roleName
    description: 'Create, read and delete Azure Files shares. Storage Account Contributor would also grant listKeys.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/fileServices/read'
          'Microsoft.Storage/storageAccounts/fileServices/shares/read'
          'Microsoft.Storage/storageAccounts/fileServices/shares/write'
          'Microsoft.Storage/storageAccounts/fileServices/shares/delete'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

output id string = role.id
output roleDefinitionId string = role.name

// One capacity pool's resource group: the dispatcher's identity may run container groups here and nowhere else.

@description('Principal id of the dispatcher identity.')
param principalId string

@description('ServicePrincipal for a managed identity, User for a developer.')
param principalType string = 'ServicePrincipal'

@description('Resource id of the ACI job runner custom role definition.')
param jobRunnerRoleId string

resource jobRunner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, jobRunnerRoleId)
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: jobRunnerRoleId
  }
}

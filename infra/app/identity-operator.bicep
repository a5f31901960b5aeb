// Managed Identity Operator for one principal on one user-assigned identity, and on nothing around it: ARM lets a
// caller give a container group a user-assigned identity only with
// Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action on that identity (else LinkedAuthorizationFailed).

@description('Name of the user-assigned identity, in this deployment\'s resource group.')
param identityName string

@description('Principal that may attach the identity to container groups.')
param principalId string

@description('ServicePrincipal for a managed identity.')
param principalType string = 'ServicePrincipal'

var managedIdentityOperator = 'f1a07417-d97a-45cb-824c-7a7467783830'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource operator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(identity.id, principalId, managedIdentityOperator)
  scope: identity
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', managedIdentityOperator)
  }
}

// One team's job identities (teams.<name>.identities in main.bicep: name to user-assigned identity resource id): the
// dispatcher may attach each of them to that team's container groups, and nothing else. Each may live in any resource
// group of any subscription of the tenant; the grant is made there, on the identity itself.
targetScope = 'subscription'

@description('The team\'s identities: name to the resource id of a user-assigned managed identity.')
param identities object

@description('Principal that attaches them to container groups: the dispatcher\'s identity.')
param principalId string

// One at a time: two names may stand for the same identity, and their grant is the same role assignment.
@batchSize(1)
module operators './identity-operator.bicep' = [for identity in items(identities): {
  name: 'identity-operator-${uniqueString(principalId, identity.value)}'
  // /subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}
  scope: resourceGroup(split(identity.value, '/')[2], split(identity.value, '/')[4])
  params: {
    identityName: last(split(identity.value, '/'))
    principalId: principalId
  }
}]

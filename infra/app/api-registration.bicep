// The dispatcher's HTTP API in Entra ID: an app registration and its service principal, created with the Microsoft
// Graph Bicep extension (alias in infra/bicepconfig.json). Tokens for it are v2 (their audience is the client id),
// carry the caller's app roles and security groups (teams map from group object ids), and the Azure CLI may get them
// without a consent prompt, for `dispatcher login` through AzureCliCredential.
//
// Limits of the extension (learn.microsoft.com/graph/templates/limitations): public cloud only; no what-if (azd
// provision --preview) and no deployment stacks; the deploying identity needs Graph rights to create applications
// (a user who may register apps, or a service principal with Application.ReadWrite.OwnedBy). `azd down` leaves the
// registration in place (it lives in the tenant, not in a resource group). Only Microsoft.Graph resources live here:
// checkov's parser cannot read `extension`, so tests/infra keeps this file out of its scan.
extension microsoftGraphV1

@description('The registration\'s key in the tenant, unique and immutable: deploying again with it updates the same app.')
param uniqueName string

@description('Name shown in App registrations and Enterprise applications.')
param displayName string

@description('The dashboard\'s sign-in redirect pages (https://{host}/api/ui/redirect.html): the registration is also the dashboard\'s single-page application client, so MSAL.js in the page gets tokens for the API with PKCE.')
param dashboardRedirectUris array = []

@description('Tenant of the registration; its id makes the identifier URI unique (api://{tenantId}/{uniqueName}).')
param tenantId string = tenant().tenantId

// The Azure CLI's public client: pre-authorized for the scope, so AzureCliCredential gets tokens without consent.
var azureCliAppId = '04b07795-8ddb-461a-bbee-02f9e1bf7b46'

// api://{tenantId}/{string}, not api://{appId}: the app id is known only once the app exists, and a resource cannot
// name itself. The tenant id in it satisfies Entra's identifier URI restrictions that require a tenant identifier.
var identifierUri = 'api://${tenantId}/${uniqueName}'

var scopeValue = 'access_as_user'
var scopeId = guid(uniqueName, scopeValue)

// dispatcher.settings.ROLES. Ids are guid(uniqueName, value): the same on every deployment, so assignments survive.
var roles = [
  {
    value: 'Jobs.Read'
    displayName: 'Read jobs'
    description: 'Read the jobs of your teams: status, logs and outputs.'
  }
  {
    value: 'Jobs.Submit'
    displayName: 'Submit jobs'
    description: 'Submit, cancel and re-run the jobs of your teams (includes Jobs.Read).'
  }
  {
    value: 'Jobs.Admin'
    displayName: 'Administer jobs'
    description: 'Read, submit, cancel and re-run the jobs of every team, or of none.'
  }
  {
    value: 'Schedules.Manage'
    displayName: 'Manage schedules'
    description: 'Create, change, pause, trigger and delete schedules.'
  }
]

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  description: 'The ACI job dispatcher\'s HTTP API.'
  signInAudience: 'AzureADMyOrg'
  identifierUris: [
    identifierUri
  ]
  // The dashboard signs in as this registration: a SPA redirect URI allows the authorization code flow with PKCE
  // from the browser, the code redeemed across origins (learn.microsoft.com/entra/identity-platform/scenario-spa-app-registration).
  spa: {
    redirectUris: dashboardRedirectUris
  }
  // Security groups the caller is a member of, as object ids in the groups claim (at most 200 in a token).
  groupMembershipClaims: 'SecurityGroup'
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [
      {
        id: scopeId
        value: scopeValue
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Use the job dispatcher as the signed-in user'
        adminConsentDescription: 'Lets the app call the job dispatcher\'s API as the signed-in user, with that user\'s app roles.'
        userConsentDisplayName: 'Use the job dispatcher as you'
        userConsentDescription: 'Lets the app call the job dispatcher\'s API as you, with your app roles.'
      }
    ]
    preAuthorizedApplications: [
      {
        appId: azureCliAppId
        delegatedPermissionIds: [
          scopeId
        ]
      }
    ]
  }
  appRoles: [for role in roles: {
    id: guid(uniqueName, role.value)
    value: role.value
    displayName: role.displayName
    description: role.description
    allowedMemberTypes: [
      'User'
      'Application'
    ]
    isEnabled: true
  }]
}

// The enterprise application: where app roles are assigned to users, groups and other applications.
resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: application.appId
}

output clientId string = application.appId
output servicePrincipalId string = servicePrincipal.id
output identifierUri string = identifierUri
// What the CLI asks for: AzureCliCredential turns a scope into an az --resource by dropping "/.default" (and only
// that suffix), so a `.../access_as_user` scope would not reach the CLI intact.
output scope string = '${identifierUri}/.default'
// What the dashboard asks for, named as Entra names it in the token's answer, so MSAL.js finds it in its cache.
output dashboardScope string = '${identifierUri}/${scopeValue}'

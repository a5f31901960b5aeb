// A Linux Flex Consumption (FC1) plan for Azure Functions.

@description('Name of the plan.')
param name string

@description('Region of the plan.')
param location string

@description('Tags to apply.')
param tags object = {}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

output id string = plan.id
output name string = plan.name

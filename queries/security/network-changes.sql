-- summary: Security group, network ACL, route, gateway (internet, NAT, transit, VPN), VPC, endpoint, subnet and flow log changes
-- control: security network-changes
SELECT eventtime,
       eventname,
       eventsource,
       actor(useridentity) AS principal,
       useridentity.accesskeyid AS accesskeyid,
       sourceipaddress,
       useragent,
       awsregion AS region,
       recipientaccountid AS account,
       errorcode,
       requestparameters,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventsource = 'ec2.amazonaws.com'
  AND eventname IN ('AuthorizeSecurityGroupIngress', 'AuthorizeSecurityGroupEgress', 'RevokeSecurityGroupIngress', 'RevokeSecurityGroupEgress',
                    'CreateSecurityGroup', 'DeleteSecurityGroup', 'ModifySecurityGroupRules', 'CreateNetworkAcl',
                    'CreateNetworkAclEntry', 'DeleteNetworkAcl', 'DeleteNetworkAclEntry', 'ReplaceNetworkAclEntry',
                    'ReplaceNetworkAclAssociation', 'CreateRoute', 'CreateRouteTable', 'ReplaceRoute',
                    'ReplaceRouteTableAssociation', 'DeleteRouteTable', 'DeleteRoute', 'DisassociateRouteTable',
                    'AssociateRouteTable', 'CreateCustomerGateway', 'DeleteCustomerGateway', 'AttachInternetGateway',
                    'CreateInternetGateway', 'DeleteInternetGateway', 'DetachInternetGateway', 'CreateNatGateway',
                    'DeleteNatGateway', 'CreateTransitGateway', 'DeleteTransitGateway', 'CreateTransitGatewayVpcAttachment',
                    'DeleteTransitGatewayVpcAttachment', 'CreateVpnConnection', 'DeleteVpnConnection', 'CreateVpc',
                    'DeleteVpc', 'ModifyVpcAttribute', 'AcceptVpcPeeringConnection', 'CreateVpcPeeringConnection',
                    'DeleteVpcPeeringConnection', 'RejectVpcPeeringConnection', 'CreateVpcEndpoint', 'DeleteVpcEndpoints',
                    'ModifyVpcEndpoint', 'DeleteFlowLogs', 'CreateSubnet', 'DeleteSubnet',
                    'ModifySubnetAttribute')
  AND errorcode IS NULL
ORDER BY eventtime DESC, eventid

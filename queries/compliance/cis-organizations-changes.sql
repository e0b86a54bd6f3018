-- summary: CIS v1.4+ 4.15 and v6.0 5.15: AWS Organizations changes
-- control: cis-v1.4 4.15
-- control: cis-v1.5 4.15
-- control: cis-v2.0 4.15
-- control: cis-v3.0 4.15
-- control: cis-v4.0 4.15
-- control: cis-v5.0 4.15
-- control: cis-v6.0 5.15
-- control: security organizations-changes
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
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventsource = 'organizations.amazonaws.com'
  AND eventname IN ('AcceptHandshake', 'AttachPolicy', 'CreateAccount', 'CreateOrganizationalUnit',
                    'CreatePolicy', 'DeclineHandshake', 'DeleteOrganization', 'DeleteOrganizationalUnit',
                    'DeletePolicy', 'DetachPolicy', 'DisablePolicyType', 'EnablePolicyType',
                    'InviteAccountToOrganization', 'LeaveOrganization', 'MoveAccount', 'RemoveAccountFromOrganization',
                    'UpdatePolicy', 'UpdateOrganizationalUnit')
ORDER BY eventtime DESC, eventid

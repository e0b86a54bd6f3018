-- summary: CIS 3.4/4.4/5.4 and Security Hub CloudWatch.4: IAM policy changes (the 16 API names, any event source, as the benchmark prints it)
-- control: cis-v1.2 3.4
-- control: cis-v1.4 4.4
-- control: cis-v1.5 4.4
-- control: cis-v2.0 4.4
-- control: cis-v3.0 4.4
-- control: cis-v4.0 4.4
-- control: cis-v5.0 4.4
-- control: cis-v6.0 5.4
-- securityhub: CloudWatch.4
--
-- No eventSource clause: Organizations' CreatePolicy/DeletePolicy match too. security/iam-changes is
-- the variant scoped to iam.amazonaws.com.
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
  AND eventname IN ('DeleteGroupPolicy', 'DeleteRolePolicy', 'DeleteUserPolicy', 'PutGroupPolicy',
                    'PutRolePolicy', 'PutUserPolicy', 'CreatePolicy', 'DeletePolicy',
                    'CreatePolicyVersion', 'DeletePolicyVersion', 'AttachRolePolicy', 'DetachRolePolicy',
                    'AttachUserPolicy', 'DetachUserPolicy', 'AttachGroupPolicy', 'DetachGroupPolicy')
ORDER BY eventtime DESC, eventid

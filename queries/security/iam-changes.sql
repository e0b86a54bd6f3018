-- summary: IAM policy, permission, trust, credential and user changes (iam.amazonaws.com only): who granted what to whom
-- control: security iam-changes
--
-- Refused calls (errorCode set) changed nothing and are left to security/access-denied.
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
  AND eventsource = 'iam.amazonaws.com'
  AND eventname IN ('DeleteGroupPolicy', 'DeleteRolePolicy', 'DeleteUserPolicy', 'PutGroupPolicy',
                    'PutRolePolicy', 'PutUserPolicy', 'CreatePolicy', 'DeletePolicy',
                    'CreatePolicyVersion', 'DeletePolicyVersion', 'AttachRolePolicy', 'DetachRolePolicy',
                    'AttachUserPolicy', 'DetachUserPolicy', 'AttachGroupPolicy', 'DetachGroupPolicy',
                    'SetDefaultPolicyVersion', 'PutRolePermissionsBoundary', 'PutUserPermissionsBoundary', 'DeleteRolePermissionsBoundary',
                    'DeleteUserPermissionsBoundary', 'UpdateAssumeRolePolicy', 'CreateAccessKey', 'UpdateAccessKey',
                    'DeleteAccessKey', 'CreateLoginProfile', 'UpdateLoginProfile', 'DeleteLoginProfile',
                    'CreateUser', 'DeleteUser', 'CreateRole', 'DeleteRole',
                    'AddUserToGroup', 'RemoveUserFromGroup', 'DeactivateMFADevice', 'DeleteVirtualMFADevice',
                    'UploadSSHPublicKey', 'UploadSigningCertificate', 'CreateServiceSpecificCredential')
  AND errorcode IS NULL
ORDER BY eventtime DESC, eventid

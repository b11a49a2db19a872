-- The Tapstream SDK's timeline lookups name no account, only the app's SDK
-- secret (AccountService.AppBySDKSecret). A hash index finds it without a
-- B-tree's ordered comparisons, which would tell a prober how much of a
-- guessed secret is right.
CREATE INDEX apps_sdk_secret ON apps USING hash (sdk_secret);

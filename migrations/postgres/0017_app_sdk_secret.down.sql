DROP INDEX apps_sdk_secret;

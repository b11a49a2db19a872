DROP TABLE IF EXISTS login_failures; DROP TABLE IF EXISTS sessions;

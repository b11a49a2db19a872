CREATE TABLE accounts (
	id            bigserial PRIMARY KEY,
	name          text NOT NULL UNIQUE,
	email         text NOT NULL UNIQUE,
	password_hash text NOT NULL,
	created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE apps (
	id                 bigserial PRIMARY KEY,
	account_id         bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name               text NOT NULL,
	sdk_secret         text NOT NULL,
	sdk_key            text NOT NULL UNIQUE,
	ios_url            text NOT NULL DEFAULT '',
	android_url        text NOT NULL DEFAULT '',
	web_url            text NOT NULL DEFAULT '',
	-- Attribution settings in seconds.
	click_window       bigint NOT NULL,
	fingerprint_window bigint NOT NULL,
	lateness_horizon   bigint NOT NULL,
	retention          bigint NOT NULL,
	created_at         timestamptz NOT NULL DEFAULT now(),
	UNIQUE (account_id, name)
);

CREATE TABLE links (
	id          bigserial PRIMARY KEY,
	app_id      bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	slug        text NOT NULL UNIQUE,
	name        text NOT NULL,
	ios_url     text NOT NULL DEFAULT '',
	android_url text NOT NULL DEFAULT '',
	web_url     text NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX links_app_id ON links (app_id);

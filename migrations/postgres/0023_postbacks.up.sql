-- Postback templates of an app (ad networks' and customers' webhooks), and the outbox of their deliveries: a
-- delivery is written in the matcher's flush transaction, once per
-- idempotency key, and sent later by a sender (docs/postbacks.md).
CREATE TABLE postbacks (
	id               bigserial PRIMARY KEY,
	app_id           bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	kind             text NOT NULL DEFAULT 'network',
	network          text NOT NULL,
	source           text NOT NULL DEFAULT '',
	link_ids         bigint[] NOT NULL DEFAULT '{}',
	events           text[] NOT NULL,
	method           text NOT NULL,
	url              text NOT NULL,
	body             text NOT NULL DEFAULT '',
	content_type     text NOT NULL DEFAULT '',
	fields           text[] NOT NULL DEFAULT '{}',
	on_reattribution text NOT NULL DEFAULT 'none',
	max_concurrent   int NOT NULL DEFAULT 0,
	max_per_second   double precision NOT NULL DEFAULT 0,
	timeout_ms       bigint NOT NULL DEFAULT 0,
	disabled         boolean NOT NULL DEFAULT false,
	-- A webhook's signing secrets, the current one first; the previous one
	-- signs too until previous_secret_expires.
	secrets                 text[] NOT NULL DEFAULT '{}',
	previous_secret_expires timestamptz,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX postbacks_app ON postbacks (app_id);

CREATE TABLE postback_deliveries (
	id             bigserial PRIMARY KEY,
	key            text NOT NULL UNIQUE,
	app_id         bigint NOT NULL,
	postback_id    bigint NOT NULL,
	kind           text NOT NULL DEFAULT 'network',
	network        text NOT NULL,
	trigger        text NOT NULL,
	conversion_id  text NOT NULL DEFAULT '',
	event_id       text NOT NULL DEFAULT '',
	method         text NOT NULL,
	url            text NOT NULL,
	content_type   text NOT NULL DEFAULT '',
	body           bytea,
	status         text NOT NULL,
	attempts       int NOT NULL DEFAULT 0,
	claims         int NOT NULL DEFAULT 0, -- fences a sender that outlived its lease
	next_attempt   timestamptz NOT NULL,
	last_code      int NOT NULL DEFAULT 0,
	last_error     text NOT NULL DEFAULT '',
	last_body      text NOT NULL DEFAULT '',
	timeout_ms     bigint NOT NULL DEFAULT 0,
	max_concurrent int NOT NULL DEFAULT 0,
	max_per_second double precision NOT NULL DEFAULT 0,
	created_at     timestamptz NOT NULL,
	delivered_at   timestamptz
);

CREATE INDEX postback_deliveries_due ON postback_deliveries (next_attempt) WHERE status = 'pending';
CREATE INDEX postback_deliveries_app ON postback_deliveries (app_id, id DESC);
CREATE INDEX postback_deliveries_conversion ON postback_deliveries (app_id, conversion_id);

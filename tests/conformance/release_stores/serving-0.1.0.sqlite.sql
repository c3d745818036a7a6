BEGIN TRANSACTION;
CREATE TABLE batch_profile (
	person_id VARCHAR(40) NOT NULL, "identifier_count" BIGINT, "first_seen_at" DATETIME, "age" BIGINT, "signup_date" DATE, "marketing_opt_in" BOOLEAN, "total_lifetime_spend" FLOAT, "number_of_orders" BIGINT, "avg_order_value" FLOAT, "first_purchase_date" DATE, "last_purchase_date" DATE, "days_since_last_purchase" BIGINT, "orders_30d" BIGINT, "orders_90d" BIGINT, "orders_365d" BIGINT, "spend_30d" FLOAT, "spend_90d" FLOAT, "spend_365d" FLOAT, "favourite_category" TEXT, "refund_rate" FLOAT, "rfm_recency" BIGINT, "rfm_frequency" BIGINT, "rfm_monetary" BIGINT, "sessions_30d" BIGINT, "page_views_30d" BIGINT, "product_views_30d" BIGINT, "cart_adds_30d" BIGINT, "conversion_rate_30d" FLOAT, "last_visit_at" DATETIME, "email_subscription_status" TEXT, "email_open_rate" FLOAT, "email_click_rate" FLOAT, "last_email_open_at" DATETIME, "support_ticket_count" BIGINT, "support_tickets_90d" BIGINT, "open_support_tickets" BIGINT, "avg_resolution_hours" FLOAT, "csat_score" FLOAT, "batch_date" DATE, 
	PRIMARY KEY (person_id)
);
INSERT INTO "batch_profile" VALUES('p_435276b439f22063',7,'2025-01-01 00:00:00.000000',35,'2025-01-01',1,160.0,4,5.33333333333333357026e+01,'2025-01-02','2025-01-06',55,0,4,4,0.0,160.0,160.0,'home',0.25,1,3,3,0,0,0,0,NULL,'2025-01-11 01:00:00.000000','subscribed',0.5,0.5,'2025-01-05 10:00:00.000000',2,2,1,24.0,4.0,'2025-03-02');
INSERT INTO "batch_profile" VALUES('p_e570544b9e4a8bbf',1,'2025-01-07 09:00:00.000000',NULL,NULL,NULL,15.0,1,15.0,'2025-01-07','2025-01-07',54,0,1,1,0.0,15.0,15.0,NULL,0.0,2,1,1,0,0,0,0,NULL,NULL,NULL,NULL,NULL,NULL,0,0,0,NULL,NULL,'2025-03-02');
INSERT INTO "batch_profile" VALUES('p_3981d80a792eb857',5,'2025-01-01 00:00:00.000000',NULL,'2025-01-01',1,80.0,2,40.0,'2025-01-10','2025-01-11',50,0,2,2,0.0,80.0,80.0,NULL,0.0,3,2,2,0,0,0,0,NULL,NULL,'unsubscribed',0.0,0.0,NULL,1,1,1,NULL,NULL,'2025-03-02');
INSERT INTO "batch_profile" VALUES('p_de4301251a5b4069',2,'2025-01-01 00:00:00.000000',NULL,'2025-01-01',1,0.0,0,NULL,NULL,NULL,NULL,0,0,0,0.0,0.0,0.0,NULL,NULL,NULL,NULL,NULL,0,0,0,0,NULL,NULL,NULL,NULL,NULL,NULL,0,0,0,NULL,NULL,'2025-03-02');
INSERT INTO "batch_profile" VALUES('p_d0e9ff897660fd68',3,NULL,NULL,NULL,NULL,0.0,0,NULL,NULL,NULL,NULL,0,0,0,0.0,0.0,0.0,NULL,NULL,NULL,NULL,NULL,0,0,0,0,NULL,NULL,'subscribed',1.0,0.0,'2025-01-05 10:00:00.000000',0,0,0,NULL,NULL,'2025-03-02');
CREATE TABLE batch_publish (
	id INTEGER NOT NULL, 
	batch_date VARCHAR(10) NOT NULL, 
	cutoff_at DATETIME NOT NULL, 
	published_at DATETIME NOT NULL, 
	persons BIGINT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "batch_publish" VALUES(1,'2025-03-02','2025-03-03 00:00:00.000000','2026-12-06 08:30:03.979854',5);
CREATE TABLE batch_run (
	batch_date VARCHAR(10) NOT NULL, 
	step VARCHAR(32) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	seconds FLOAT, 
	rows BIGINT, 
	detail TEXT, 
	PRIMARY KEY (batch_date, step)
);
INSERT INTO "batch_run" VALUES('2025-03-02','ingest','succeeded','2026-12-06 08:30:02.667555','2026-12-06 08:30:02.927033',0.259478,39,'9 tables, 1 rows quarantined');
INSERT INTO "batch_run" VALUES('2025-03-02','identity','succeeded','2026-12-06 08:30:02.928117','2026-12-06 08:30:03.813945',0.885828,5,'5 persons from 17 records; 17 deterministic + 0 probabilistic links; 0 merges, 0 splits; 0 links refused, 0 clusters flagged');
INSERT INTO "batch_run" VALUES('2025-03-02','features','succeeded','2026-12-06 08:30:03.815036','2026-12-06 08:30:03.941898',0.126862,5,'persons profiled');
INSERT INTO "batch_run" VALUES('2025-03-02','score','skipped','2026-12-06 08:30:03.943188','2026-12-06 08:30:03.944154',0.000966,NULL,'no churn model registered yet');
INSERT INTO "batch_run" VALUES('2025-03-02','quality','succeeded','2026-12-06 08:30:03.944674','2026-12-06 08:30:03.950017',0.005343,9,'warnings: freshness zendesk.events: newest partition 2025-01-11 (50 days old)');
INSERT INTO "batch_run" VALUES('2025-03-02','publish','succeeded','2026-12-06 08:30:03.950640','2026-12-06 08:30:03.982613',0.031973,5,'profiles published; real-time identity links: 0 dropped, 0 contradicted, 0 provisional');
CREATE TABLE dead_letter (
	id INTEGER NOT NULL, 
	topic VARCHAR(100) NOT NULL, 
	partition INTEGER, 
	"offset" BIGINT, 
	reason TEXT NOT NULL, 
	payload TEXT NOT NULL, 
	received_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "dead_letter" VALUES(1,'clickstream',1,0,'not JSON: unexpected character, expected a string key: line 1 column 2 (char 1)','{not json','2026-12-06 08:30:03.997066');
CREATE TABLE identity_map (
	id_type VARCHAR(32) NOT NULL, 
	id_value VARCHAR(320) NOT NULL, 
	person_id VARCHAR(40) NOT NULL, 
	PRIMARY KEY (id_type, id_value)
);
INSERT INTO "identity_map" VALUES('anonymous_id','c-a','p_435276b439f22063');
INSERT INTO "identity_map" VALUES('customer_id','1','p_435276b439f22063');
INSERT INTO "identity_map" VALUES('customer_id','2','p_3981d80a792eb857');
INSERT INTO "identity_map" VALUES('customer_id','3','p_de4301251a5b4069');
INSERT INTO "identity_map" VALUES('email','alice.work@x.com','p_435276b439f22063');
INSERT INTO "identity_map" VALUES('email','alice@x.com','p_435276b439f22063');
INSERT INTO "identity_map" VALUES('email','bob@y.com','p_3981d80a792eb857');
INSERT INTO "identity_map" VALUES('email','carol@z.com','p_de4301251a5b4069');
INSERT INTO "identity_map" VALUES('email','dave@g.com','p_e570544b9e4a8bbf');
INSERT INTO "identity_map" VALUES('email','eve@n.com','p_d0e9ff897660fd68');
INSERT INTO "identity_map" VALUES('mailchimp_id','54161104a587b089450b7b5a1e04dfed','p_d0e9ff897660fd68');
INSERT INTO "identity_map" VALUES('mailchimp_id','77df0c091681b71e32b643dc62e4a567','p_435276b439f22063');
INSERT INTO "identity_map" VALUES('mailchimp_id','a1','p_435276b439f22063');
INSERT INTO "identity_map" VALUES('mailchimp_id','b1','p_3981d80a792eb857');
INSERT INTO "identity_map" VALUES('mailchimp_id','d8195058df922e523466ba35158e569c','p_3981d80a792eb857');
INSERT INTO "identity_map" VALUES('mailchimp_id','e1','p_d0e9ff897660fd68');
INSERT INTO "identity_map" VALUES('zendesk_user_id','10','p_435276b439f22063');
INSERT INTO "identity_map" VALUES('zendesk_user_id','11','p_3981d80a792eb857');
CREATE TABLE identity_stitch (
	anonymous_id VARCHAR(320) NOT NULL, 
	customer_id VARCHAR(64) NOT NULL, 
	linked_at DATETIME NOT NULL, 
	status VARCHAR(16) DEFAULT 'provisional' NOT NULL, 
	batch_person_id VARCHAR(40), 
	flagged_at DATETIME, 
	PRIMARY KEY (anonymous_id)
);
INSERT INTO "identity_stitch" VALUES('c-a','1','2025-01-11 01:00:00.000000','provisional',NULL,NULL);
INSERT INTO "identity_stitch" VALUES('cookie-new','1','2025-03-03 09:00:00.000000','provisional',NULL,NULL);
CREATE TABLE person (
	person_id VARCHAR(40) NOT NULL, 
	customer_id BIGINT, 
	email VARCHAR(320), 
	first_name VARCHAR(100), 
	last_name VARCHAR(100), 
	phone VARCHAR(32), 
	city VARCHAR(100), 
	country VARCHAR(2), 
	PRIMARY KEY (person_id)
);
INSERT INTO "person" VALUES('p_435276b439f22063',1,'Alice@X.com','Alice','A',NULL,'Leeds','GB');
INSERT INTO "person" VALUES('p_e570544b9e4a8bbf',NULL,'dave@g.com',NULL,NULL,NULL,NULL,NULL);
INSERT INTO "person" VALUES('p_3981d80a792eb857',2,'bob@y.com','Bob','B',NULL,'Leeds','GB');
INSERT INTO "person" VALUES('p_de4301251a5b4069',3,'carol@z.com','Carol','C',NULL,'Leeds','GB');
INSERT INTO "person" VALUES('p_d0e9ff897660fd68',NULL,'eve@n.com',NULL,NULL,NULL,NULL,NULL);
CREATE TABLE person_redirect (
	retired_id VARCHAR(40) NOT NULL, 
	person_id VARCHAR(40) NOT NULL, 
	since DATE NOT NULL, 
	PRIMARY KEY (retired_id)
);
CREATE TABLE realtime_order (
	order_id VARCHAR(64) NOT NULL, 
	id_type VARCHAR(32) NOT NULL, 
	id_value VARCHAR(320) NOT NULL, 
	user_id VARCHAR(64), 
	order_at DATETIME NOT NULL, 
	revenue FLOAT NOT NULL, 
	PRIMARY KEY (order_id)
);
INSERT INTO "realtime_order" VALUES('o-900','anonymous_id','cookie-new','1','2025-03-03 09:00:00.000000',42.5);
CREATE TABLE realtime_state (
	id_type VARCHAR(32) NOT NULL, 
	id_value VARCHAR(320) NOT NULL, 
	user_id VARCHAR(64), 
	session_start DATETIME, 
	session_last_event_at DATETIME, 
	current_session_page_views INTEGER NOT NULL, 
	current_session_product_views INTEGER DEFAULT '0' NOT NULL, 
	last_event_at DATETIME, 
	last_event_type VARCHAR(64), 
	events_total BIGINT NOT NULL, 
	cart_id VARCHAR(64), 
	cart_items INTEGER DEFAULT '0' NOT NULL, 
	cart_value FLOAT DEFAULT '0' NOT NULL, 
	cart_lines TEXT, 
	cart_since DATETIME, 
	cart_updated_at DATETIME, 
	recent_event_times TEXT, 
	user_id_at DATETIME, 
	recent_message_ids TEXT, 
	PRIMARY KEY (id_type, id_value)
);
INSERT INTO "realtime_state" VALUES('anonymous_id','c-a','1','2025-01-11 01:00:00.000000','2025-01-11 01:00:00.000000',1,0,'2025-01-11 01:00:00.000000','page',7,NULL,0,0.0,NULL,'2025-01-09 10:08:00.000000','2025-01-09 10:08:00.000000','[1736557200000]','2025-01-11 01:00:00.000000','["m1","m2","m3","m4","m5","m6","m7"]');
INSERT INTO "realtime_state" VALUES('anonymous_id','c-z',NULL,'2025-01-09 12:00:00.000000','2025-01-09 12:00:00.000000',1,0,'2025-01-09 12:00:00.000000','page',1,NULL,0,0.0,NULL,NULL,NULL,'[1736424000000]',NULL,'["m8"]');
INSERT INTO "realtime_state" VALUES('anonymous_id','cookie-new','1','2025-03-03 09:00:00.000000','2025-03-03 09:00:00.000000',0,0,'2025-03-03 09:00:00.000000','Order Completed',1,NULL,0,0.0,NULL,'2025-03-03 09:00:00.000000','2025-03-03 09:00:00.000000','[1740992400000]','2025-03-03 09:00:00.000000','["m-order-1"]');
CREATE TABLE realtime_support (
	id_type VARCHAR(32) NOT NULL, 
	id_value VARCHAR(320) NOT NULL, 
	open_ticket_count INTEGER DEFAULT '0' NOT NULL, 
	last_event_at DATETIME, 
	events_total BIGINT DEFAULT '0' NOT NULL, 
	tickets TEXT, 
	recent_event_ids TEXT, 
	PRIMARY KEY (id_type, id_value)
);
INSERT INTO "realtime_support" VALUES('zendesk_user_id','900',1,'2025-03-03 10:00:00.000000',1,'{"77":["OPEN",1740996000000]}','["e1"]');
CREATE TABLE stream_offsets (
	consumer_group VARCHAR(100) NOT NULL, 
	topic VARCHAR(100) NOT NULL, 
	partition INTEGER NOT NULL, 
	next_offset BIGINT NOT NULL, 
	PRIMARY KEY (consumer_group, topic, partition)
);
INSERT INTO "stream_offsets" VALUES('speed','clickstream',0,8);
INSERT INTO "stream_offsets" VALUES('speed','clickstream',1,2);
INSERT INTO "stream_offsets" VALUES('speed','support',0,1);
CREATE INDEX ix_identity_map_person_id ON identity_map (person_id);
CREATE INDEX ix_person_redirect_person_id ON person_redirect (person_id);
CREATE INDEX ix_identity_stitch_customer_id ON identity_stitch (customer_id);
CREATE INDEX ix_realtime_state_user_id ON realtime_state (user_id);
CREATE INDEX ix_realtime_order_order_at ON realtime_order (order_at);
CREATE INDEX ix_realtime_order_identifier ON realtime_order (id_type, id_value);
CREATE VIEW realtime_profile AS 
SELECT person_id, current_session_page_views, current_session_product_views,
       session_start AS current_session_start, last_event_at, last_event_type,
       person_events_total AS events_total, person_events_last_hour AS events_last_hour,
       person_cart_items AS cart_items, person_cart_value AS cart_value
FROM (
  SELECT rows.*,
         CAST(SUM(rows.events_total) OVER (PARTITION BY rows.person_id) AS BIGINT)
             AS person_events_total,
         CAST(SUM(rows.events_last_hour) OVER (PARTITION BY rows.person_id) AS BIGINT)
             AS person_events_last_hour,
         FIRST_VALUE(rows.cart_items) OVER latest_cart AS person_cart_items,
         FIRST_VALUE(rows.cart_value) OVER latest_cart AS person_cart_value,
         ROW_NUMBER() OVER (
             PARTITION BY rows.person_id
             ORDER BY (rows.last_event_at IS NULL), rows.last_event_at DESC,
                      rows.id_type, rows.id_value) AS recency
  FROM (
SELECT COALESCE(by_link.person_id, by_user.person_id, by_id.person_id) AS person_id, r.*,
       (SELECT count(*) FROM json_each(r.recent_event_times) WHERE json_each.value > ((julianday('now') - 2440587.5) * 86400000.0) - 3600000) AS events_last_hour
FROM realtime_state r
LEFT JOIN identity_stitch link ON r.id_type = 'anonymous_id' AND link.anonymous_id = r.id_value
LEFT JOIN identity_map by_link
       ON by_link.id_type = 'customer_id' AND by_link.id_value = link.customer_id
LEFT JOIN identity_map by_user ON by_user.id_type = 'customer_id' AND by_user.id_value = r.user_id
LEFT JOIN identity_map by_id ON by_id.id_type = r.id_type AND by_id.id_value = r.id_value

) rows
  WHERE rows.person_id IS NOT NULL
  WINDOW latest_cart AS (
      PARTITION BY rows.person_id
      ORDER BY (rows.cart_updated_at IS NULL), rows.cart_updated_at DESC,
               rows.id_type, rows.id_value)
) ranked
WHERE recency = 1;
CREATE VIEW support_profile AS 
SELECT m.person_id, CAST(SUM(s.open_ticket_count) AS BIGINT) AS open_ticket_count,
       MAX(s.last_event_at) AS last_support_event_at
FROM realtime_support s
JOIN identity_map m ON m.id_type = s.id_type AND m.id_value = s.id_value

GROUP BY m.person_id;
CREATE VIEW order_deltas AS 
SELECT person_id, count(*) AS orders_since_cutoff, sum(revenue) AS spend_since_cutoff,
       max(order_at) AS last_order_at
FROM (
  SELECT COALESCE(by_user.person_id, by_link.person_id, by_id.person_id) AS person_id, r.order_at, r.revenue
  FROM realtime_order r
LEFT JOIN identity_stitch link ON r.id_type = 'anonymous_id' AND link.anonymous_id = r.id_value
LEFT JOIN identity_map by_link
       ON by_link.id_type = 'customer_id' AND by_link.id_value = link.customer_id
LEFT JOIN identity_map by_user ON by_user.id_type = 'customer_id' AND by_user.id_value = r.user_id
LEFT JOIN identity_map by_id ON by_id.id_type = r.id_type AND by_id.id_value = r.id_value
  WHERE r.order_at >= COALESCE(
      (SELECT cutoff_at FROM batch_publish ORDER BY id DESC LIMIT 1), '1970-01-01')
  
) orders
WHERE person_id IS NOT NULL 
GROUP BY person_id;
CREATE VIEW profile AS
            SELECT p.*, b."identifier_count", b."first_seen_at", b."age", b."signup_date", b."marketing_opt_in", COALESCE(b."total_lifetime_spend", 0) + COALESCE(d.spend_since_cutoff, 0) AS "total_lifetime_spend", COALESCE(b."number_of_orders", 0) + COALESCE(d.orders_since_cutoff, 0) AS "number_of_orders", b."avg_order_value", b."first_purchase_date", CASE WHEN d.last_order_at IS NULL THEN b."last_purchase_date" WHEN b."last_purchase_date" IS NULL THEN date(d.last_order_at) ELSE max(b."last_purchase_date", date(d.last_order_at)) END AS "last_purchase_date", b."days_since_last_purchase", b."orders_30d", b."orders_90d", b."orders_365d", b."spend_30d", b."spend_90d", b."spend_365d", b."favourite_category", b."refund_rate", b."rfm_recency", b."rfm_frequency", b."rfm_monetary", b."sessions_30d", b."page_views_30d", b."product_views_30d", b."cart_adds_30d", b."conversion_rate_30d", b."last_visit_at", b."email_subscription_status", b."email_open_rate", b."email_click_rate", b."last_email_open_at", b."support_ticket_count", b."support_tickets_90d", b."open_support_tickets", b."avg_resolution_hours", b."csat_score", b."batch_date",
                   rt.current_session_page_views, rt.current_session_product_views,
                   rt.current_session_start, rt.last_event_at, rt.last_event_type,
                   rt.events_last_hour, rt.cart_items, rt.cart_value,
                   COALESCE(sp.open_ticket_count, 0) AS open_ticket_count,
                   CASE WHEN sp.open_ticket_count > 0 THEN TRUE ELSE FALSE END
                       AS has_open_support_ticket
            FROM person p
            LEFT JOIN batch_profile b ON b.person_id = p.person_id
            LEFT JOIN realtime_profile rt ON rt.person_id = p.person_id
            LEFT JOIN support_profile sp ON sp.person_id = p.person_id
            LEFT JOIN order_deltas d ON d.person_id = p.person_id;
COMMIT;

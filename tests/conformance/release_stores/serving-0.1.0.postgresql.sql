--
-- PostgreSQL database dump
--

--
-- Name: batch_profile; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.batch_profile (
    person_id character varying(40) NOT NULL,
    identifier_count bigint,
    first_seen_at timestamp without time zone,
    age bigint,
    signup_date date,
    marketing_opt_in boolean,
    total_lifetime_spend double precision,
    number_of_orders bigint,
    avg_order_value double precision,
    first_purchase_date date,
    last_purchase_date date,
    days_since_last_purchase bigint,
    orders_30d bigint,
    orders_90d bigint,
    orders_365d bigint,
    spend_30d double precision,
    spend_90d double precision,
    spend_365d double precision,
    favourite_category text,
    refund_rate double precision,
    rfm_recency bigint,
    rfm_frequency bigint,
    rfm_monetary bigint,
    sessions_30d bigint,
    page_views_30d bigint,
    product_views_30d bigint,
    cart_adds_30d bigint,
    conversion_rate_30d double precision,
    last_visit_at timestamp without time zone,
    email_subscription_status text,
    email_open_rate double precision,
    email_click_rate double precision,
    last_email_open_at timestamp without time zone,
    support_ticket_count bigint,
    support_tickets_90d bigint,
    open_support_tickets bigint,
    avg_resolution_hours double precision,
    csat_score double precision,
    batch_date date
);

--
-- Name: batch_publish; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.batch_publish (
    id integer NOT NULL,
    batch_date character varying(10) NOT NULL,
    cutoff_at timestamp without time zone NOT NULL,
    published_at timestamp without time zone NOT NULL,
    persons bigint NOT NULL
);

--
-- Name: batch_publish_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.batch_publish_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: batch_publish_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.batch_publish_id_seq OWNED BY public.batch_publish.id;

--
-- Name: batch_run; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.batch_run (
    batch_date character varying(10) NOT NULL,
    step character varying(32) NOT NULL,
    status character varying(16) NOT NULL,
    started_at timestamp without time zone NOT NULL,
    finished_at timestamp without time zone,
    seconds double precision,
    rows bigint,
    detail text
);

--
-- Name: dead_letter; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.dead_letter (
    id integer NOT NULL,
    topic character varying(100) NOT NULL,
    partition integer,
    "offset" bigint,
    reason text NOT NULL,
    payload text NOT NULL,
    received_at timestamp without time zone NOT NULL
);

--
-- Name: dead_letter_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.dead_letter_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: dead_letter_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.dead_letter_id_seq OWNED BY public.dead_letter.id;

--
-- Name: identity_map; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.identity_map (
    id_type character varying(32) NOT NULL,
    id_value character varying(320) NOT NULL,
    person_id character varying(40) NOT NULL
);

--
-- Name: identity_stitch; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.identity_stitch (
    anonymous_id character varying(320) NOT NULL,
    customer_id character varying(64) NOT NULL,
    linked_at timestamp without time zone NOT NULL,
    status character varying(16) DEFAULT 'provisional'::character varying NOT NULL,
    batch_person_id character varying(40),
    flagged_at timestamp without time zone
);

--
-- Name: realtime_order; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.realtime_order (
    order_id character varying(64) NOT NULL,
    id_type character varying(32) NOT NULL,
    id_value character varying(320) NOT NULL,
    user_id character varying(64),
    order_at timestamp without time zone NOT NULL,
    revenue double precision NOT NULL
);

--
-- Name: order_deltas; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.order_deltas AS
 SELECT orders.person_id,
    count(*) AS orders_since_cutoff,
    sum(orders.revenue) AS spend_since_cutoff,
    max(orders.order_at) AS last_order_at
   FROM ( SELECT COALESCE(by_user.person_id, by_link.person_id, by_id.person_id) AS person_id,
            r.order_at,
            r.revenue
           FROM ((((public.realtime_order r
             LEFT JOIN public.identity_stitch link ON ((((r.id_type)::text = 'anonymous_id'::text) AND ((link.anonymous_id)::text = (r.id_value)::text))))
             LEFT JOIN public.identity_map by_link ON ((((by_link.id_type)::text = 'customer_id'::text) AND ((by_link.id_value)::text = (link.customer_id)::text))))
             LEFT JOIN public.identity_map by_user ON ((((by_user.id_type)::text = 'customer_id'::text) AND ((by_user.id_value)::text = (r.user_id)::text))))
             LEFT JOIN public.identity_map by_id ON ((((by_id.id_type)::text = (r.id_type)::text) AND ((by_id.id_value)::text = (r.id_value)::text))))
          WHERE (r.order_at >= COALESCE(( SELECT batch_publish.cutoff_at
                   FROM public.batch_publish
                  ORDER BY batch_publish.id DESC
                 LIMIT 1), '1970-01-01 00:00:00'::timestamp without time zone))) orders
  WHERE (orders.person_id IS NOT NULL)
  GROUP BY orders.person_id;

--
-- Name: person; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.person (
    person_id character varying(40) NOT NULL,
    customer_id bigint,
    email character varying(320),
    first_name character varying(100),
    last_name character varying(100),
    phone character varying(32),
    city character varying(100),
    country character varying(2)
);

--
-- Name: person_redirect; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.person_redirect (
    retired_id character varying(40) NOT NULL,
    person_id character varying(40) NOT NULL,
    since date NOT NULL
);

--
-- Name: realtime_state; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.realtime_state (
    id_type character varying(32) NOT NULL,
    id_value character varying(320) NOT NULL,
    user_id character varying(64),
    session_start timestamp without time zone,
    session_last_event_at timestamp without time zone,
    current_session_page_views integer NOT NULL,
    current_session_product_views integer DEFAULT 0 NOT NULL,
    last_event_at timestamp without time zone,
    last_event_type character varying(64),
    events_total bigint NOT NULL,
    cart_id character varying(64),
    cart_items integer DEFAULT 0 NOT NULL,
    cart_value double precision DEFAULT '0'::double precision NOT NULL,
    cart_lines text,
    cart_since timestamp without time zone,
    cart_updated_at timestamp without time zone,
    recent_event_times text,
    user_id_at timestamp without time zone,
    recent_message_ids text
);

--
-- Name: realtime_profile; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.realtime_profile AS
 SELECT ranked.person_id,
    ranked.current_session_page_views,
    ranked.current_session_product_views,
    ranked.session_start AS current_session_start,
    ranked.last_event_at,
    ranked.last_event_type,
    ranked.person_events_total AS events_total,
    ranked.person_events_last_hour AS events_last_hour,
    ranked.person_cart_items AS cart_items,
    ranked.person_cart_value AS cart_value
   FROM ( SELECT rows.person_id,
            rows.id_type,
            rows.id_value,
            rows.user_id,
            rows.session_start,
            rows.session_last_event_at,
            rows.current_session_page_views,
            rows.current_session_product_views,
            rows.last_event_at,
            rows.last_event_type,
            rows.events_total,
            rows.cart_id,
            rows.cart_items,
            rows.cart_value,
            rows.cart_lines,
            rows.cart_since,
            rows.cart_updated_at,
            rows.recent_event_times,
            rows.user_id_at,
            rows.recent_message_ids,
            rows.events_last_hour,
            (sum(rows.events_total) OVER (PARTITION BY rows.person_id))::bigint AS person_events_total,
            (sum(rows.events_last_hour) OVER (PARTITION BY rows.person_id))::bigint AS person_events_last_hour,
            first_value(rows.cart_items) OVER latest_cart AS person_cart_items,
            first_value(rows.cart_value) OVER latest_cart AS person_cart_value,
            row_number() OVER (PARTITION BY rows.person_id ORDER BY (rows.last_event_at IS NULL), rows.last_event_at DESC, rows.id_type, rows.id_value) AS recency
           FROM ( SELECT COALESCE(by_link.person_id, by_user.person_id, by_id.person_id) AS person_id,
                    r.id_type,
                    r.id_value,
                    r.user_id,
                    r.session_start,
                    r.session_last_event_at,
                    r.current_session_page_views,
                    r.current_session_product_views,
                    r.last_event_at,
                    r.last_event_type,
                    r.events_total,
                    r.cart_id,
                    r.cart_items,
                    r.cart_value,
                    r.cart_lines,
                    r.cart_since,
                    r.cart_updated_at,
                    r.recent_event_times,
                    r.user_id_at,
                    r.recent_message_ids,
                    ( SELECT count(*) AS count
                           FROM jsonb_array_elements_text((r.recent_event_times)::jsonb) t(v)
                          WHERE (((t.v)::bigint)::numeric > ((EXTRACT(epoch FROM CURRENT_TIMESTAMP) * (1000)::numeric) - (3600000)::numeric))) AS events_last_hour
                   FROM ((((public.realtime_state r
                     LEFT JOIN public.identity_stitch link ON ((((r.id_type)::text = 'anonymous_id'::text) AND ((link.anonymous_id)::text = (r.id_value)::text))))
                     LEFT JOIN public.identity_map by_link ON ((((by_link.id_type)::text = 'customer_id'::text) AND ((by_link.id_value)::text = (link.customer_id)::text))))
                     LEFT JOIN public.identity_map by_user ON ((((by_user.id_type)::text = 'customer_id'::text) AND ((by_user.id_value)::text = (r.user_id)::text))))
                     LEFT JOIN public.identity_map by_id ON ((((by_id.id_type)::text = (r.id_type)::text) AND ((by_id.id_value)::text = (r.id_value)::text))))) rows
          WHERE (rows.person_id IS NOT NULL)
          WINDOW latest_cart AS (PARTITION BY rows.person_id ORDER BY (rows.cart_updated_at IS NULL), rows.cart_updated_at DESC, rows.id_type, rows.id_value)) ranked
  WHERE (ranked.recency = 1);

--
-- Name: realtime_support; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.realtime_support (
    id_type character varying(32) NOT NULL,
    id_value character varying(320) NOT NULL,
    open_ticket_count integer DEFAULT 0 NOT NULL,
    last_event_at timestamp without time zone,
    events_total bigint DEFAULT '0'::bigint NOT NULL,
    tickets text,
    recent_event_ids text
);

--
-- Name: support_profile; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.support_profile AS
 SELECT m.person_id,
    sum(s.open_ticket_count) AS open_ticket_count,
    max(s.last_event_at) AS last_support_event_at
   FROM (public.realtime_support s
     JOIN public.identity_map m ON ((((m.id_type)::text = (s.id_type)::text) AND ((m.id_value)::text = (s.id_value)::text))))
  GROUP BY m.person_id;

--
-- Name: profile; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.profile AS
 SELECT p.person_id,
    p.customer_id,
    p.email,
    p.first_name,
    p.last_name,
    p.phone,
    p.city,
    p.country,
    b.identifier_count,
    b.first_seen_at,
    b.age,
    b.signup_date,
    b.marketing_opt_in,
    (COALESCE(b.total_lifetime_spend, (0)::double precision) + COALESCE(d.spend_since_cutoff, (0)::double precision)) AS total_lifetime_spend,
    (COALESCE(b.number_of_orders, (0)::bigint) + COALESCE(d.orders_since_cutoff, (0)::bigint)) AS number_of_orders,
    b.avg_order_value,
    b.first_purchase_date,
        CASE
            WHEN (d.last_order_at IS NULL) THEN b.last_purchase_date
            WHEN (b.last_purchase_date IS NULL) THEN (d.last_order_at)::date
            ELSE GREATEST(b.last_purchase_date, (d.last_order_at)::date)
        END AS last_purchase_date,
    b.days_since_last_purchase,
    b.orders_30d,
    b.orders_90d,
    b.orders_365d,
    b.spend_30d,
    b.spend_90d,
    b.spend_365d,
    b.favourite_category,
    b.refund_rate,
    b.rfm_recency,
    b.rfm_frequency,
    b.rfm_monetary,
    b.sessions_30d,
    b.page_views_30d,
    b.product_views_30d,
    b.cart_adds_30d,
    b.conversion_rate_30d,
    b.last_visit_at,
    b.email_subscription_status,
    b.email_open_rate,
    b.email_click_rate,
    b.last_email_open_at,
    b.support_ticket_count,
    b.support_tickets_90d,
    b.open_support_tickets,
    b.avg_resolution_hours,
    b.csat_score,
    b.batch_date,
    rt.current_session_page_views,
    rt.current_session_product_views,
    rt.current_session_start,
    rt.last_event_at,
    rt.last_event_type,
    rt.events_last_hour,
    rt.cart_items,
    rt.cart_value,
    COALESCE(sp.open_ticket_count, (0)::bigint) AS open_ticket_count,
        CASE
            WHEN (sp.open_ticket_count > 0) THEN true
            ELSE false
        END AS has_open_support_ticket
   FROM ((((public.person p
     LEFT JOIN public.batch_profile b ON (((b.person_id)::text = (p.person_id)::text)))
     LEFT JOIN public.realtime_profile rt ON (((rt.person_id)::text = (p.person_id)::text)))
     LEFT JOIN public.support_profile sp ON (((sp.person_id)::text = (p.person_id)::text)))
     LEFT JOIN public.order_deltas d ON (((d.person_id)::text = (p.person_id)::text)));

--
-- Name: stream_offsets; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.stream_offsets (
    consumer_group character varying(100) NOT NULL,
    topic character varying(100) NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL
);

--
-- Name: batch_publish id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.batch_publish ALTER COLUMN id SET DEFAULT nextval('public.batch_publish_id_seq'::regclass);

--
-- Name: dead_letter id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dead_letter ALTER COLUMN id SET DEFAULT nextval('public.dead_letter_id_seq'::regclass);

--
-- Data for Name: batch_profile; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.batch_profile VALUES ('p_3981d80a792eb857', 5, '2025-01-01 00:00:00', NULL, '2025-01-01', true, 80, 2, 40, '2025-01-10', '2025-01-11', 50, 0, 2, 2, 0, 80, 80, NULL, 0, 3, 2, 2, 0, 0, 0, 0, NULL, NULL, 'unsubscribed', 0, 0, NULL, 1, 1, 1, NULL, NULL, '2025-03-02');
INSERT INTO public.batch_profile VALUES ('p_de4301251a5b4069', 2, '2025-01-01 00:00:00', NULL, '2025-01-01', true, 0, 0, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, NULL, NULL, '2025-03-02');
INSERT INTO public.batch_profile VALUES ('p_d0e9ff897660fd68', 3, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL, NULL, 'subscribed', 1, 0, '2025-01-05 10:00:00', 0, 0, 0, NULL, NULL, '2025-03-02');
INSERT INTO public.batch_profile VALUES ('p_435276b439f22063', 7, '2025-01-01 00:00:00', 35, '2025-01-01', true, 160, 4, 53.333333333333336, '2025-01-02', '2025-01-06', 55, 0, 4, 4, 0, 160, 160, 'home', 0.25, 1, 3, 3, 0, 0, 0, 0, NULL, '2025-01-11 01:00:00', 'subscribed', 0.5, 0.5, '2025-01-05 10:00:00', 2, 2, 1, 24, 4, '2025-03-02');
INSERT INTO public.batch_profile VALUES ('p_e570544b9e4a8bbf', 1, '2025-01-07 09:00:00', NULL, NULL, NULL, 15, 1, 15, '2025-01-07', '2025-01-07', 54, 0, 1, 1, 0, 15, 15, NULL, 0, 2, 1, 1, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, NULL, NULL, '2025-03-02');

--
-- Data for Name: batch_publish; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.batch_publish VALUES (1, '2025-03-02', '2025-03-03 00:00:00', '2026-12-06 08:30:05.15256', 5);

--
-- Data for Name: batch_run; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.batch_run VALUES ('2025-03-02', 'ingest', 'succeeded', '2026-12-06 08:30:04.269761', '2026-12-06 08:30:04.314144', 0.044383, 39, '9 tables, 1 rows quarantined');
INSERT INTO public.batch_run VALUES ('2025-03-02', 'identity', 'succeeded', '2026-12-06 08:30:04.316185', '2026-12-06 08:30:04.94843', 0.632245, 5, '5 persons from 17 records; 17 deterministic + 0 probabilistic links; 0 merges, 0 splits; 0 links refused, 0 clusters flagged');
INSERT INTO public.batch_run VALUES ('2025-03-02', 'features', 'succeeded', '2026-12-06 08:30:04.950409', '2026-12-06 08:30:05.064209', 0.1138, 5, 'persons profiled');
INSERT INTO public.batch_run VALUES ('2025-03-02', 'score', 'skipped', '2026-12-06 08:30:05.066135', '2026-12-06 08:30:05.067037', 0.000902, NULL, 'no churn model registered yet');
INSERT INTO public.batch_run VALUES ('2025-03-02', 'quality', 'succeeded', '2026-12-06 08:30:05.069617', '2026-12-06 08:30:05.074461', 0.004844, 9, 'warnings: freshness zendesk.events: newest partition 2025-01-11 (50 days old)');
INSERT INTO public.batch_run VALUES ('2025-03-02', 'publish', 'succeeded', '2026-12-06 08:30:05.075974', '2026-12-06 08:30:05.16133', 0.085356, 5, 'profiles published; real-time identity links: 0 dropped, 0 contradicted, 0 provisional');

--
-- Data for Name: dead_letter; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.dead_letter VALUES (1, 'clickstream', 1, 0, 'not JSON: unexpected character, expected a string key: line 1 column 2 (char 1)', '{not json', '2026-12-06 08:30:05.18277');

--
-- Data for Name: identity_map; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.identity_map VALUES ('anonymous_id', 'c-a', 'p_435276b439f22063');
INSERT INTO public.identity_map VALUES ('customer_id', '1', 'p_435276b439f22063');
INSERT INTO public.identity_map VALUES ('customer_id', '2', 'p_3981d80a792eb857');
INSERT INTO public.identity_map VALUES ('customer_id', '3', 'p_de4301251a5b4069');
INSERT INTO public.identity_map VALUES ('email', 'alice.work@x.com', 'p_435276b439f22063');
INSERT INTO public.identity_map VALUES ('email', 'alice@x.com', 'p_435276b439f22063');
INSERT INTO public.identity_map VALUES ('email', 'bob@y.com', 'p_3981d80a792eb857');
INSERT INTO public.identity_map VALUES ('email', 'carol@z.com', 'p_de4301251a5b4069');
INSERT INTO public.identity_map VALUES ('email', 'dave@g.com', 'p_e570544b9e4a8bbf');
INSERT INTO public.identity_map VALUES ('email', 'eve@n.com', 'p_d0e9ff897660fd68');
INSERT INTO public.identity_map VALUES ('mailchimp_id', '54161104a587b089450b7b5a1e04dfed', 'p_d0e9ff897660fd68');
INSERT INTO public.identity_map VALUES ('mailchimp_id', '77df0c091681b71e32b643dc62e4a567', 'p_435276b439f22063');
INSERT INTO public.identity_map VALUES ('mailchimp_id', 'a1', 'p_435276b439f22063');
INSERT INTO public.identity_map VALUES ('mailchimp_id', 'b1', 'p_3981d80a792eb857');
INSERT INTO public.identity_map VALUES ('mailchimp_id', 'd8195058df922e523466ba35158e569c', 'p_3981d80a792eb857');
INSERT INTO public.identity_map VALUES ('mailchimp_id', 'e1', 'p_d0e9ff897660fd68');
INSERT INTO public.identity_map VALUES ('zendesk_user_id', '10', 'p_435276b439f22063');
INSERT INTO public.identity_map VALUES ('zendesk_user_id', '11', 'p_3981d80a792eb857');

--
-- Data for Name: identity_stitch; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.identity_stitch VALUES ('c-a', '1', '2025-01-11 01:00:00', 'provisional', NULL, NULL);
INSERT INTO public.identity_stitch VALUES ('cookie-new', '1', '2025-03-03 09:00:00', 'provisional', NULL, NULL);

--
-- Data for Name: person; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.person VALUES ('p_3981d80a792eb857', 2, 'bob@y.com', 'Bob', 'B', NULL, 'Leeds', 'GB');
INSERT INTO public.person VALUES ('p_de4301251a5b4069', 3, 'carol@z.com', 'Carol', 'C', NULL, 'Leeds', 'GB');
INSERT INTO public.person VALUES ('p_d0e9ff897660fd68', NULL, 'eve@n.com', NULL, NULL, NULL, NULL, NULL);
INSERT INTO public.person VALUES ('p_435276b439f22063', 1, 'Alice@X.com', 'Alice', 'A', NULL, 'Leeds', 'GB');
INSERT INTO public.person VALUES ('p_e570544b9e4a8bbf', NULL, 'dave@g.com', NULL, NULL, NULL, NULL, NULL);

--
-- Data for Name: person_redirect; Type: TABLE DATA; Schema: public; Owner: -
--

--
-- Data for Name: realtime_order; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.realtime_order VALUES ('o-900', 'anonymous_id', 'cookie-new', '1', '2025-03-03 09:00:00', 42.5);

--
-- Data for Name: realtime_state; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.realtime_state VALUES ('anonymous_id', 'c-a', '1', '2025-01-11 01:00:00', '2025-01-11 01:00:00', 1, 0, '2025-01-11 01:00:00', 'page', 7, NULL, 0, 0, NULL, '2025-01-09 10:08:00', '2025-01-09 10:08:00', '[1736557200000]', '2025-01-11 01:00:00', '["m1","m2","m3","m4","m5","m6","m7"]');
INSERT INTO public.realtime_state VALUES ('anonymous_id', 'c-z', NULL, '2025-01-09 12:00:00', '2025-01-09 12:00:00', 1, 0, '2025-01-09 12:00:00', 'page', 1, NULL, 0, 0, NULL, NULL, NULL, '[1736424000000]', NULL, '["m8"]');
INSERT INTO public.realtime_state VALUES ('anonymous_id', 'cookie-new', '1', '2025-03-03 09:00:00', '2025-03-03 09:00:00', 0, 0, '2025-03-03 09:00:00', 'Order Completed', 1, NULL, 0, 0, NULL, '2025-03-03 09:00:00', '2025-03-03 09:00:00', '[1740992400000]', '2025-03-03 09:00:00', '["m-order-1"]');

--
-- Data for Name: realtime_support; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.realtime_support VALUES ('zendesk_user_id', '900', 1, '2025-03-03 10:00:00', 1, '{"77":["OPEN",1740996000000]}', '["e1"]');

--
-- Data for Name: stream_offsets; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.stream_offsets VALUES ('speed', 'clickstream', 0, 8);
INSERT INTO public.stream_offsets VALUES ('speed', 'clickstream', 1, 2);
INSERT INTO public.stream_offsets VALUES ('speed', 'support', 0, 1);

--
-- Name: batch_publish_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.batch_publish_id_seq', 1, true);

--
-- Name: dead_letter_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.dead_letter_id_seq', 1, true);

--
-- Name: batch_profile batch_profile_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.batch_profile
    ADD CONSTRAINT batch_profile_pkey PRIMARY KEY (person_id);

--
-- Name: batch_publish batch_publish_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.batch_publish
    ADD CONSTRAINT batch_publish_pkey PRIMARY KEY (id);

--
-- Name: batch_run batch_run_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.batch_run
    ADD CONSTRAINT batch_run_pkey PRIMARY KEY (batch_date, step);

--
-- Name: dead_letter dead_letter_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dead_letter
    ADD CONSTRAINT dead_letter_pkey PRIMARY KEY (id);

--
-- Name: identity_map identity_map_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.identity_map
    ADD CONSTRAINT identity_map_pkey PRIMARY KEY (id_type, id_value);

--
-- Name: identity_stitch identity_stitch_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.identity_stitch
    ADD CONSTRAINT identity_stitch_pkey PRIMARY KEY (anonymous_id);

--
-- Name: person person_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.person
    ADD CONSTRAINT person_pkey PRIMARY KEY (person_id);

--
-- Name: person_redirect person_redirect_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.person_redirect
    ADD CONSTRAINT person_redirect_pkey PRIMARY KEY (retired_id);

--
-- Name: realtime_order realtime_order_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.realtime_order
    ADD CONSTRAINT realtime_order_pkey PRIMARY KEY (order_id);

--
-- Name: realtime_state realtime_state_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.realtime_state
    ADD CONSTRAINT realtime_state_pkey PRIMARY KEY (id_type, id_value);

--
-- Name: realtime_support realtime_support_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.realtime_support
    ADD CONSTRAINT realtime_support_pkey PRIMARY KEY (id_type, id_value);

--
-- Name: stream_offsets stream_offsets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stream_offsets
    ADD CONSTRAINT stream_offsets_pkey PRIMARY KEY (consumer_group, topic, partition);

--
-- Name: ix_identity_map_person_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_identity_map_person_id ON public.identity_map USING btree (person_id);

--
-- Name: ix_identity_stitch_customer_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_identity_stitch_customer_id ON public.identity_stitch USING btree (customer_id);

--
-- Name: ix_person_redirect_person_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_person_redirect_person_id ON public.person_redirect USING btree (person_id);

--
-- Name: ix_realtime_order_identifier; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_realtime_order_identifier ON public.realtime_order USING btree (id_type, id_value);

--
-- Name: ix_realtime_order_order_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_realtime_order_order_at ON public.realtime_order USING btree (order_at);

--
-- Name: ix_realtime_state_user_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_realtime_state_user_id ON public.realtime_state USING btree (user_id);

--
-- PostgreSQL database dump complete
--


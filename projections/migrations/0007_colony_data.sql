-- Data the colony's local providers work on: a sample knowledge base and CRM.
-- (Real deployments point RESEARCH_PROVIDER / the CRM target at their own systems.)
CREATE TABLE kb_documents (
    document_id text PRIMARY KEY,
    project_id  text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL,
    source      text NOT NULL,
    search      tsvector GENERATED ALWAYS AS (to_tsvector('english', title || ' ' || body)) STORED
);
CREATE INDEX kb_documents_search ON kb_documents USING gin (search);

CREATE TABLE crm_accounts (
    account_id          text PRIMARY KEY,
    company             text NOT NULL UNIQUE,
    contact             text NOT NULL,
    industry            text NOT NULL,
    employees           integer NOT NULL,
    notes               text NOT NULL,
    qualification_score text,
    next_step           text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- The CRM's own idempotency guard: one application per writeback, whatever retries.
CREATE TABLE crm_writebacks (
    writeback_id text PRIMARY KEY,
    account_id   text NOT NULL REFERENCES crm_accounts (account_id),
    changes      jsonb NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now()
);

INSERT INTO kb_documents (document_id, project_id, title, body, source) VALUES
('atlas-status', 'atlas', 'Atlas weekly status',
 'Project atlas is on track for the Q3 release. The data migration finished two weeks early. '
 'The integration with the billing service is the main delivery risk because the vendor API is still in beta. '
 'The team added a fallback path that keeps invoices flowing if the vendor API fails.',
 'kb://atlas/status/2026-w45'),
('atlas-risks', 'atlas', 'Atlas risk register',
 'The top risk for atlas is the billing vendor API stability. A second risk is the staffing gap in QA until November. '
 'Mitigation: contract testers were approved and start next sprint. Budget is 8 percent under plan.',
 'kb://atlas/risks'),
('atlas-architecture', 'atlas', 'Atlas architecture notes',
 'Atlas replaces the legacy order system with an event-driven service. Orders flow through Kafka topics '
 'and PostgreSQL projections. Latency targets are 200 ms at the 99th percentile.',
 'kb://atlas/architecture'),
('zephyr-status', 'zephyr', 'Zephyr status',
 'Project zephyr is paused pending budget review. No delivery dates are committed.',
 'kb://zephyr/status');

INSERT INTO crm_accounts (account_id, company, contact, industry, employees, notes) VALUES
('acct-northwind', 'Northwind Traders', 'Ana Trujillo', 'Food distribution', 120,
 'Northwind Traders asked for a demo of order automation in October. '
 'They run 14 warehouses and struggle with manual invoicing. Budget owner is the COO. '
 'They currently use a legacy ERP whose support ends next year.'),
('acct-contoso', 'Contoso Ltd', 'Mark Lee', 'Manufacturing', 900,
 'Contoso evaluated a competitor last year and chose not to buy. Low engagement since.'),
('acct-fabrikam', 'Fabrikam Inc', 'Sara Davis', 'Retail', 45,
 'Fabrikam is a small retailer; interested but no budget until next fiscal year.');

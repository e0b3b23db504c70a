-- The Microsoft cloud of each connector, named where its hosts are one cloud's (Microsoft Graph
-- national cloud deployments), `custom` otherwise (private endpoints, emulators).
ALTER TABLE "connectors" ADD COLUMN "cloud" text DEFAULT 'global' NOT NULL;--> statement-breakpoint
UPDATE "connectors" SET "cloud" = CASE
  WHEN "authority_host" = 'https://login.microsoftonline.com' AND "graph_base_url" = 'https://graph.microsoft.com' THEN 'global'
  WHEN "authority_host" = 'https://login.microsoftonline.us' AND "graph_base_url" = 'https://graph.microsoft.us' THEN 'usgov'
  WHEN "authority_host" = 'https://login.chinacloudapi.cn' AND "graph_base_url" = 'https://microsoftgraph.chinacloudapi.cn' THEN 'china'
  ELSE 'custom' END;--> statement-breakpoint
ALTER TABLE "connectors" ADD CONSTRAINT "connectors_cloud_ck" CHECK (cloud in ('global', 'usgov', 'china', 'custom'));

-- Prosody 0.12 (Debian) configuration for the loopback test server of the trial suite.
-- Started by twisted_tests/xmpp_servers.py; everything variable comes from the environment:
-- XMPP_TEST_DIR  : absolute, writable scratch dir (data/, certs/, pid, log)
-- XMPP_TEST_PORT : c2s port on 127.0.0.1
local BASE = ENV_XMPP_TEST_DIR or error("XMPP_TEST_DIR is not set")
local PORT = tonumber(ENV_XMPP_TEST_PORT) or error("XMPP_TEST_PORT is not set")

run_as_root  = true                -- CI runs as root; ignored otherwise
data_path    = BASE .. "/data"     -- accounts, nodes, items (internal file storage)
pidfile      = BASE .. "/prosody.pid"
certificates = BASE .. "/certs"    -- localhost.crt/.key made by the fixture: STARTTLS offered
log = { info = BASE .. "/prosody.log" }

interfaces     = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports      = { PORT }
modules_disabled = { "s2s", "offline" }
modules_enabled  = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "pep"; "register"; }

authentication = "internal_hashed"
c2s_require_encryption       = false  -- STARTTLS is offered, not required: both client modes
allow_unencrypted_plain_auth = true   -- Twisted's SASL has no SCRAM, only PLAIN
allow_registration           = true   -- XEP-0077 in-band registration (loopback is allow-listed)
pep_max_items                = 1000   -- upper bound for pubsub#max_items on PEP (default 256)

-- mod_pubsub lets only admins create nodes on the component.
admins = { "alice@localhost" }

VirtualHost "localhost"

Component "pubsub.localhost" "pubsub"
    pubsub_max_items = 1000           -- upper bound for pubsub#max_items (default 256)
    expose_publisher = true

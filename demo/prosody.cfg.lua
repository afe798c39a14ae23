-- Prosody (Debian) configuration of the demo's throwaway server, on 127.0.0.1 only.
-- DEMO_DIR: scratch directory (data, pid, log); DEMO_PORT: the c2s port.
local BASE = ENV_DEMO_DIR or error("DEMO_DIR is not set")
local PORT = tonumber(ENV_DEMO_PORT) or error("DEMO_PORT is not set")

run_as_root  = true
data_path    = BASE .. "/data"
pidfile      = BASE .. "/prosody.pid"
certificates = BASE .. "/certs"
log = { info = BASE .. "/prosody.log" }

interfaces     = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports      = { PORT }
modules_disabled = { "s2s", "offline" }
modules_enabled  = { "roster"; "saslauth"; "disco"; "ping"; "pep"; }

authentication = "internal_hashed"
c2s_require_encryption       = false  -- loopback only: the client uses tls = plaintext
allow_unencrypted_plain_auth = true
pep_max_items                = 1000

VirtualHost "localhost"

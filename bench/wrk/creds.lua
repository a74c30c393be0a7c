-- GET /v1/database/creds/<BENCH_ROLE> with the token from BENCH_TOKEN: every
-- request creates a PostgreSQL role (the role's creation statements, in one
-- transaction) and a lease stored durably.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local report = require("report")

local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
local role = os.getenv("BENCH_ROLE") or "bench"

wrk.method = "GET"
wrk.path = "/v1/database/creds/" .. role
wrk.headers["X-Vault-Token"] = token

done = report.done

-- GET /v1/secret/data/<BENCH_PATH> with the token from BENCH_TOKEN: a KV v2
-- read through the whole pipeline (token lookup, ACL, audit, barrier, storage).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local report = require("report")

local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
local path = os.getenv("BENCH_PATH") or "bench/read"

wrk.method = "GET"
wrk.path = "/v1/secret/data/" .. path
wrk.headers["X-Vault-Token"] = token

done = report.done

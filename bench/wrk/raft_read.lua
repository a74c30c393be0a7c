-- GET /v1/secret/data/<BENCH_PATH> with the token from BENCH_TOKEN, as
-- read.lua, plus `X-Cairn-Consistency: <BENCH_CONSISTENCY>` when that is set
-- (`stale`: the node reads its local state without a read-index round).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local report = require("report")

local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
local path = os.getenv("BENCH_PATH") or "bench/read"
local consistency = os.getenv("BENCH_CONSISTENCY")

wrk.method = "GET"
wrk.path = "/v1/secret/data/" .. path
wrk.headers["X-Vault-Token"] = token
if consistency and consistency ~= "" then
  wrk.headers["X-Cairn-Consistency"] = consistency
end

done = report.done

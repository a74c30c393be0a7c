-- POST /v1/secret/data/<BENCH_PREFIX>/t<thread>/k<n>: every request writes a
-- new key (so no request waits on another's version list) with a 256-byte
-- value. Each wrk thread has its own Lua state, hence the thread number.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local report = require("report")

local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
local prefix = os.getenv("BENCH_PREFIX") or "bench/write"
local body = '{"data":{"value":"' .. string.rep("x", 256) .. '"}}'

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
function request()
  n = n + 1
  return wrk.format("POST", string.format("/v1/secret/data/%s/t%d/k%d", prefix, tid or 0, n),
    { ["X-Vault-Token"] = token, ["Content-Type"] = "application/json" }, body)
end

done = report.done

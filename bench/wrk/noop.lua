-- GET /v1/sys/cairn/noop: no token, no ACL, no audit, no storage. The HTTP
-- ceiling of the server the other scenarios run against.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local report = require("report")

wrk.method = "GET"
wrk.path = "/v1/sys/cairn/noop"

done = report.done

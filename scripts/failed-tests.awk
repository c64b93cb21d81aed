# Prints the whole -v output of every top-level Go test that failed, so a CI
# log shows why (make e2e runs it on e2e.out after a failure).
/^=== RUN   [^\/]+$/ { name = $3; buf[name] = "" }
{ if (name != "") buf[name] = buf[name] $0 "\n" }
/^--- FAIL: / { n = $3; if (n in buf) printf "%s", buf[n]; else print }

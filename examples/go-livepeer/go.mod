module github.com/vouch-telemetry/vouch/examples/go-livepeer

go 1.19

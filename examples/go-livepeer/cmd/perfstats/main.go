// Command perfstats reads a verifier's /api/aggregated_stats the way a
// go-livepeer gateway reads -orchPerfStatsUrl: the body is decoded into
// map[orchestrator address]map[REGION]map[field]float64, and the gateway
// keeps the "score" of its own region (-region) to compare with
// -minPerfScore. It prints one JSON line per orchestrator with a score in
// that region, sorted by address, so a test can compare it with the API.
//
//	go run ./cmd/perfstats URL REGION
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"time"
)

// perfScores is the shape go-livepeer unmarshals the response into.
type perfScores map[string]map[string]map[string]float64

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: perfstats URL REGION")
		os.Exit(2)
	}
	url, region := os.Args[1], os.Args[2]
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fetch:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "status:", resp.Status)
		os.Exit(1)
	}
	var scores perfScores
	if err := json.NewDecoder(resp.Body).Decode(&scores); err != nil {
		fmt.Fprintln(os.Stderr, "decode:", err)
		os.Exit(1)
	}
	addrs := make([]string, 0, len(scores))
	for addr := range scores {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	for _, addr := range addrs {
		stats, ok := scores[addr][region]
		if !ok {
			continue
		}
		line, _ := json.Marshal(map[string]interface{}{"address": addr, "region": region, "score": stats["score"]})
		fmt.Println(string(line))
	}
}

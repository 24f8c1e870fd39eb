// Command replay reads go-livepeer events from an NDJSON file (one Kafka
// envelope per line: {id, type, timestamp, gateway, data}) and publishes each
// through the vouch package exactly as go-livepeer's
// monitor.SendQueueEventAsync(type, data) would, then flushes, prints the
// SDK's statistics as JSON on stdout and closes.
//
//	replay -config publisher.toml -events events.ndjson
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/vouch-telemetry/vouch/examples/go-livepeer/vouch"
)

// kafkaEvent is go-livepeer's Kafka envelope; only type and data are handed
// on (go-livepeer's monitor builds the rest itself).
type kafkaEvent struct {
	Type string      `json:"type"`
	Data interface{} `json:"data"`
}

func main() {
	configPath := flag.String("config", "", "publisher configuration (TOML)")
	eventsPath := flag.String("events", "", "go-livepeer events, one Kafka JSON envelope per line")
	flushTimeout := flag.Duration("flush-timeout", 10*time.Second, "longest wait for the final flush")
	closeTimeout := flag.Duration("close-timeout", 5*time.Second, "longest wait for close")
	flag.Parse()
	if *configPath == "" || *eventsPath == "" {
		fmt.Fprintln(os.Stderr, "usage: replay -config FILE.toml -events FILE.ndjson")
		os.Exit(2)
	}
	if err := run(*configPath, *eventsPath, *flushTimeout, *closeTimeout); err != nil {
		fmt.Fprintln(os.Stderr, "replay:", err)
		os.Exit(1)
	}
}

func run(configPath, eventsPath string, flushTimeout, closeTimeout time.Duration) error {
	config, err := os.ReadFile(configPath)
	if err != nil {
		return err
	}
	pub, err := vouch.New(string(config))
	if err != nil {
		return err
	}
	defer pub.Close(closeTimeout)
	if err := pub.OnError(func(code int, message string) {
		fmt.Fprintf(os.Stderr, "replay: the SDK dropped an event (code %d): %s\n", code, message)
	}); err != nil {
		return err
	}

	file, err := os.Open(eventsPath)
	if err != nil {
		return err
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	lines, skipped := 0, 0
	for scanner.Scan() {
		line := bytes.TrimSpace(scanner.Bytes())
		if len(line) == 0 {
			continue
		}
		lines++
		var event kafkaEvent
		decoder := json.NewDecoder(bytes.NewReader(line))
		decoder.UseNumber() // keep go-livepeer's numbers exact
		if err := decoder.Decode(&event); err != nil || event.Type == "" {
			fmt.Fprintf(os.Stderr, "replay: line %d is not a go-livepeer event, skipped\n", lines)
			skipped++
			continue
		}
		pub.SendQueueEventAsync(event.Type, event.Data)
	}
	if err := scanner.Err(); err != nil {
		return err
	}
	if err := pub.Flush(flushTimeout); err != nil {
		return err
	}
	stats, err := pub.StatsJSON()
	if err != nil {
		return err
	}
	fmt.Println(stats)
	fmt.Fprintf(os.Stderr, "replay: %d lines, %d skipped, %d marshal errors, %d refused by the SDK\n",
		lines, skipped, pub.MarshalErrors(), pub.PublishErrors())
	return pub.Close(closeTimeout)
}

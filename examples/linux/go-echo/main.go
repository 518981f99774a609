// A Lambda runtime loop using only Go's standard library (net/http): it
// answers each event with the event itself. Nothing in it knows about
// Mayfly; built with CGO_ENABLED=0, it is a static Linux program.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	for {
		next, err := http.Get(base + "next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "next:", err)
			os.Exit(1)
		}
		event, err := io.ReadAll(next.Body)
		next.Body.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "reading the event:", err)
			os.Exit(1)
		}
		id := next.Header.Get("Lambda-Runtime-Aws-Request-Id")
		answer, err := http.Post(base+id+"/response", "application/json", bytes.NewReader(event))
		if err != nil {
			fmt.Fprintln(os.Stderr, "response:", err)
			os.Exit(1)
		}
		io.Copy(io.Discard, answer.Body)
		answer.Body.Close()
	}
}

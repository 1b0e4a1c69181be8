// Command deployed is what the Go buildpack builds for a deployed
// function: the root package's registrations served by the Functions
// Framework, FUNCTION_TARGET naming the one to serve, on PORT. cmd/bench
// times its cold start. Unlike the buildpack's main it listens on the
// loopback interface only.
package main

import (
	"log"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "tollgate.dev/tollgate"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := funcframework.StartHostPort("127.0.0.1", port); err != nil {
		log.Fatalf("funcframework: %v", err)
	}
}

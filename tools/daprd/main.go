// Command daprd is the Dapr sidecar, built from github.com/dapr/dapr with only the
// components the eventbus end-to-end tests use, so it builds in a few minutes on two
// cores instead of linking all 140 components.
package main

import (
	"github.com/dapr/components-contrib/bindings/cron"
	"github.com/dapr/components-contrib/nameresolution/nameformat"
	inmemorypubsub "github.com/dapr/components-contrib/pubsub/in-memory"
	"github.com/dapr/components-contrib/pubsub/redis"
	inmemorystate "github.com/dapr/components-contrib/state/in-memory"
	"github.com/dapr/dapr/cmd/daprd/app"
	bindingsLoader "github.com/dapr/dapr/pkg/components/bindings"
	nrLoader "github.com/dapr/dapr/pkg/components/nameresolution"
	pubsubLoader "github.com/dapr/dapr/pkg/components/pubsub"
	stateLoader "github.com/dapr/dapr/pkg/components/state"
)

func main() {
	pubsubLoader.DefaultRegistry.RegisterComponent(redis.NewRedisStreams, "redis")
	pubsubLoader.DefaultRegistry.RegisterComponent(inmemorypubsub.New, "in-memory")
	stateLoader.DefaultRegistry.RegisterComponent(inmemorystate.NewInMemoryStateStore, "in-memory")
	bindingsLoader.DefaultRegistry.RegisterInputBinding(cron.NewCron, "cron")
	// nameformat instead of the standalone default, mDNS, which announces the app
	// on the network; the tests only invoke the app through its own sidecar.
	nrLoader.DefaultRegistry.RegisterComponent(nameformat.NewResolver, "nameformat")
	app.Run()
}

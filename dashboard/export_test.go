package dashboard

import (
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Routes returns d's routes for a test to walk.
func Routes(d *Dashboard) chi.Routes { return d.router(prometheus.NewRegistry()) }

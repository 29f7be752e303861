"""HTTP as handlers see it: requests, responses, static files and routes, one module each."""

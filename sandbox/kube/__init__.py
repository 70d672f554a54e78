"""A local stand-in of the Kubernetes API, one server per site.

It speaks the JSON API of a real API server (discovery, core/v1, apps/v1, batch/v1, watches,
pod logs, `Status` errors) so that the official clients, the cncf-kubernetes provider and
kubectl work against it unchanged. Pods run as local processes, Deployments and Jobs are
driven by controllers that follow the real ones, and each site has an HTTP ingress port that
proxies to the pods of a Service or Deployment. See README.md in this folder.
"""

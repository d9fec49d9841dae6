// Exit 0 when the URL answers with a 2xx status within the timeout, 1 otherwise.
// Usage: dotnet HealthProbe.dll [URL]   (default: $HEALTHCHECK_URL, else http://127.0.0.1:8080/health/ready)
var url = args.Length > 0 ? args[0]
    : Environment.GetEnvironmentVariable("HEALTHCHECK_URL") ?? "http://127.0.0.1:8080/health/ready";
using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(4) };
try
{
    using var response = await client.GetAsync(url);
    if (response.IsSuccessStatusCode) return 0;
    Console.Error.WriteLine($"health probe: {url} answered {(int)response.StatusCode}");
    return 1;
}
catch (Exception e)
{
    Console.Error.WriteLine($"health probe: {url} failed: {e.Message}");
    return 1;
}

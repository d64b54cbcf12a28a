using System.Diagnostics;
using System.Globalization;
using MedVlp.Testing;
using Npgsql;

namespace MedVlp.Retrieval.Tests;

/// <summary>
/// The real PostgreSQL + pgvector the tests use: PGlite (a WASM build of Postgres) served on a loopback port by
/// scripts/pglite/server.mjs. scripts/test.sh starts one and exports its connection string as MEDVLP_TEST_POSTGRES;
/// without it the tests fail (they never skip). Tests that restart the database start their own server on a data folder.
/// </summary>
internal static class TestPostgres
{
    public const string Variable = "MEDVLP_TEST_POSTGRES";

    public static string ConnectionString
    {
        get
        {
            var value = Environment.GetEnvironmentVariable(Variable);
            if (string.IsNullOrEmpty(value))
            {
                Assert.Fail($"{Variable} is not set: these tests need the PostgreSQL + pgvector server that scripts/test.sh starts " +
                    "(or run `node scripts/pglite/server.mjs --port 5499 --watch-stdin false` after `npm ci` in scripts/pglite, and set " +
                    $"{Variable}=\"{ForPort(5499)}\").");
            }

            return value!;
        }
    }

    public static string ForPort(int port) => string.Create(CultureInfo.InvariantCulture,
        $"Host=127.0.0.1;Port={port};Username=postgres;Password=postgres;Database=postgres;SSL Mode=Disable;Timeout=60;Command Timeout=300");

    /// <summary>A unique table name for one test.</summary>
    public static string NewTable(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>A server of this test's own on a data folder (so it can be stopped and started again).</summary>
    public sealed class OwnServer : IDisposable
    {
        private readonly Process _process;

        public OwnServer(string dataDirectory)
        {
            var script = Path.Combine(TestData.RepoRoot, "scripts", "pglite", "server.mjs");
            var modules = Path.Combine(TestData.RepoRoot, "scripts", "pglite", "node_modules", "@electric-sql", "pglite-socket");
            Assert.True(Directory.Exists(modules), $"{modules} is missing: run `npm ci` in scripts/pglite (scripts/test.sh does).");
            var info = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            foreach (var a in new[] { script, "--port", "0", "--data", dataDirectory, "--max-seconds", "600" })
            {
                info.ArgumentList.Add(a);
            }

            _process = Process.Start(info)!;
            var line = _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(120)).GetAwaiter().GetResult();
            if (line is null || !line.StartsWith("listening 127.0.0.1:", StringComparison.Ordinal))
            {
                _process.Kill();
                Assert.Fail($"the PGlite server did not start: {line} {_process.StandardError.ReadToEnd()}");
            }

            Port = int.Parse(line!["listening 127.0.0.1:".Length..], CultureInfo.InvariantCulture);
        }

        public int Port { get; }

        public string ConnectionString => ForPort(Port);

        /// <summary>Stops the server the way an operator does (its stdin closes, it closes the database and exits).</summary>
        public void Stop()
        {
            NpgsqlConnection.ClearAllPools();
            if (_process.HasExited)
            {
                return;
            }

            _process.StandardInput.Close();
            if (!_process.WaitForExit(TimeSpan.FromSeconds(60)))
            {
                _process.Kill();
                Assert.Fail("the PGlite server did not stop within 60 s");
            }
        }

        public void Dispose()
        {
            try
            {
                Stop();
            }
            finally
            {
                _process.Dispose();
            }
        }
    }
}

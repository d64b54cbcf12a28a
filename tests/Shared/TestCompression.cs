using System.IO.Compression;

namespace MedVlp.Testing;

/// <summary>Compresses bytes in memory for tests that build gzip/zlib inputs.</summary>
internal static class TestCompression
{
    public static byte[] Gzip(byte[] data) => Compress(data, s => new GZipStream(s, CompressionLevel.Fastest));

    public static byte[] Zlib(byte[] data) => Compress(data, s => new ZLibStream(s, CompressionLevel.Fastest));

    private static byte[] Compress(byte[] data, Func<Stream, Stream> wrap)
    {
        using var m = new MemoryStream();
        using (var z = wrap(m))
        {
            z.Write(data);
        }

        return m.ToArray();
    }
}

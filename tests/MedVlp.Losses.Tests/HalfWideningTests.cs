using System.Runtime.Intrinsics;

namespace MedVlp.Losses.Tests;

/// <summary>The kernel's exact in-register half widening against .NET's own Half to float conversion, for all 65,536 bit
/// patterns, at both vector widths (the search through the other, reinterpreting reading is checked for every finite half
/// in MedVlp.Retrieval.Tests' SimilarityKernelTests).</summary>
public sealed class HalfWideningTests
{
    [Fact]
    public void WideningEqualsHalfToFloatForEveryHalf()
    {
        for (var start = 0; start < 65536; start += 16)
        {
            var bits = Enumerable.Range(start, 16).Select(v => (uint)v).ToArray();
            var wide512 = DotKernel.Widen(Vector512.Create(bits));
            var wide256 = Vector512.Create(DotKernel.Widen(Vector256.Create(bits.AsSpan(0, 8))), DotKernel.Widen(Vector256.Create(bits.AsSpan(8, 8))));
            for (var n = 0; n < 16; n++)
            {
                var expected = (float)BitConverter.UInt16BitsToHalf((ushort)bits[n]);
                foreach (var wide in new[] { wide512[n], wide256[n] })
                {
                    Assert.True(
                        float.IsNaN(expected) ? float.IsNaN(wide) : BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(wide),
                        $"half 0x{bits[n]:x4}: {wide} instead of {expected}");
                }
            }
        }
    }
}

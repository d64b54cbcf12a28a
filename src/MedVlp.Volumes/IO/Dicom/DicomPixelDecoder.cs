using System.Buffers;
using System.Buffers.Binary;

namespace MedVlp.Volumes.IO.Dicom;

/// <summary>
/// Decodes the pixel data of one DICOM file straight into a float voxel buffer: native (uncompressed) data of
/// 1, 8, 16 or 32 bits in either byte order, YBR_FULL_422 resampling, and RLE Lossless (PS3.5 Annex G).
/// Stored values are not masked to BitsStored, as pydicom and dcm2niix do not; rescale slope/intercept are applied per frame.
/// </summary>
internal static class DicomPixelDecoder
{
    /// <summary>
    /// Decodes every frame of <paramref name="image"/>. Sample <c>s</c> of frame <c>f</c> lands at
    /// <c>destination[s * sampleStride + frameSlots[f] * Rows * Columns]</c>, row by row, column fastest.
    /// </summary>
    public static void Decode(DicomImage image, Span<float> destination, IReadOnlyList<int> frameSlots, long sampleStride, CancellationToken cancellationToken)
    {
        using var stream = image.Header.OpenPixelData();
        if (image.Header.TransferSyntax.Encapsulated)
        {
            DecodeRle(image, stream, destination, frameSlots, sampleStride, cancellationToken);
        }
        else if (image.BitsAllocated == 1)
        {
            DecodeBits(image, stream, destination, frameSlots, sampleStride);
        }
        else
        {
            DecodeNative(image, stream, destination, frameSlots, sampleStride, cancellationToken);
        }
    }

    private static void DecodeNative(DicomImage image, Stream stream, Span<float> destination, IReadOnlyList<int> slots, long sampleStride, CancellationToken cancellationToken)
    {
        var type = image.DataType;
        var bytesPerSample = image.BitsAllocated / 8;
        var pixels = (int)image.PixelsPerFrame;
        var ybr422 = image.Photometric == "YBR_FULL_422";
        var samples = image.SamplesPerPixel;
        var frameBytes = ybr422 ? pixels * 2 * bytesPerSample : pixels * samples * bytesPerSample;
        var bigEndian = !image.Header.TransferSyntax.LittleEndian;
        var raw = ArrayPool<byte>.Shared.Rent(frameBytes);
        var values = samples == 1 ? null : ArrayPool<float>.Shared.Rent(pixels * samples);
        try
        {
            for (var f = 0; f < image.Frames; f++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var bytes = raw.AsSpan(0, frameBytes);
                stream.ReadExactly(bytes);
                var geometry = image.FrameGeometry[f];
                var frameStart = (long)slots[f] * pixels;
                if (samples == 1)
                {
                    var target = destination.Slice(checked((int)frameStart), pixels);
                    VoxelDecoder.Convert(bytes, target, type, bigEndian);
                    VoxelDecoder.ApplyScaling(target, geometry.Slope, geometry.Intercept);
                    continue;
                }

                var interleaved = values.AsSpan(0, pixels * samples);
                if (ybr422)
                {
                    // Y1 Y2 Cb Cr -> Y1 Cb Cr Y2 Cb Cr (PS3.3 C.7.6.3.1.2), as pydicom does.
                    for (int p = 0, q = 0; p < pixels; p += 2, q += 4)
                    {
                        interleaved[(p * 3) + 0] = bytes[q];
                        interleaved[(p * 3) + 1] = bytes[q + 2];
                        interleaved[(p * 3) + 2] = bytes[q + 3];
                        interleaved[(p * 3) + 3] = bytes[q + 1];
                        interleaved[(p * 3) + 4] = bytes[q + 2];
                        interleaved[(p * 3) + 5] = bytes[q + 3];
                    }
                }
                else
                {
                    VoxelDecoder.Convert(bytes, interleaved, type, bigEndian);
                }

                var planar = !ybr422 && image.PlanarConfiguration == 1;
                for (var s = 0; s < samples; s++)
                {
                    var target = destination.Slice(checked((int)((s * sampleStride) + frameStart)), pixels);
                    if (planar)
                    {
                        interleaved.Slice(s * pixels, pixels).CopyTo(target);
                    }
                    else
                    {
                        for (var p = 0; p < pixels; p++)
                        {
                            target[p] = interleaved[(p * samples) + s];
                        }
                    }

                    VoxelDecoder.ApplyScaling(target, geometry.Slope, geometry.Intercept);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
            if (values is not null)
            {
                ArrayPool<float>.Shared.Return(values);
            }
        }
    }

    private static void DecodeBits(DicomImage image, Stream stream, Span<float> destination, IReadOnlyList<int> slots, long sampleStride)
    {
        if (image.SamplesPerPixel != 1)
        {
            throw new VolumeFormatException(image.Path, "BitsAllocated", $"is 1 with SamplesPerPixel {image.SamplesPerPixel}; 1-bit images have one sample.");
        }

        _ = sampleStride;
        var pixels = image.PixelsPerFrame;
        var bytes = new byte[image.ExpectedNativeBytes];
        stream.ReadExactly(bytes);

        // The frames form one bit stream, least significant bit first (PS3.5 8.1.1), as pydicom unpacks it.
        for (var f = 0; f < image.Frames; f++)
        {
            var target = destination.Slice(checked((int)(slots[f] * pixels)), (int)pixels);
            var bit = f * pixels;
            for (var p = 0; p < target.Length; p++, bit++)
            {
                target[p] = (bytes[bit >> 3] >> (int)(bit & 7)) & 1;
            }

            var g = image.FrameGeometry[f];
            VoxelDecoder.ApplyScaling(target, g.Slope, g.Intercept);
        }
    }

    private static void DecodeRle(DicomImage image, Stream stream, Span<float> destination, IReadOnlyList<int> slots, long sampleStride, CancellationToken cancellationToken)
    {
        var syntax = image.Header.TransferSyntax;
        if (syntax.Uid != DicomTransferSyntax.RleLosslessUid)
        {
            throw new VolumeFormatException(image.Path, "TransferSyntaxUID", $"unsupported transfer syntax {syntax.Uid} ({syntax.Name}).");
        }

        if (image.BitsAllocated == 1)
        {
            throw new VolumeFormatException(image.Path, "BitsAllocated", "is 1 in an RLE Lossless file; RLE encodes 8, 16 or 32 bits.");
        }

        var frames = ReadFrameFragments(image, stream);
        var bytesPerSample = image.BitsAllocated / 8;
        var pixels = (int)image.PixelsPerFrame;
        var segmentsExpected = image.SamplesPerPixel * bytesPerSample;
        var planes = new byte[segmentsExpected][];
        for (var n = 0; n < planes.Length; n++)
        {
            planes[n] = new byte[pixels];
        }

        for (var f = 0; f < image.Frames; f++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var data = frames[f];
            if (data.Length < 64)
            {
                throw new VolumeFormatException(image.Path, "RLE header", $"frame {f} holds {data.Length} bytes; an RLE frame starts with a 64-byte header.");
            }

            var segments = BinaryPrimitives.ReadUInt32LittleEndian(data);
            if (segments != segmentsExpected)
            {
                throw new VolumeFormatException(image.Path, "RLE header", $"frame {f} has {segments} segment(s); SamplesPerPixel x BitsAllocated/8 = {segmentsExpected}.");
            }

            for (var s = 0; s < segments; s++)
            {
                var start = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(4 + (4 * s)));
                var end = s + 1 < segments ? BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(8 + (4 * s))) : (uint)data.Length;
                if (start < 64 || start > end || end > data.Length)
                {
                    throw new VolumeFormatException(image.Path, "RLE header", $"frame {f} segment {s} spans bytes {start} to {end} of a {data.Length}-byte frame; expected offsets from 64 in increasing order.");
                }

                DecodePackBits(data.AsSpan((int)start, (int)(end - start)), planes[s], image.Path, f, s);
            }

            var g = image.FrameGeometry[f];
            for (var sample = 0; sample < image.SamplesPerPixel; sample++)
            {
                var target = destination.Slice(checked((int)((sample * sampleStride) + ((long)slots[f] * pixels))), pixels);
                var first = sample * bytesPerSample;
                for (var p = 0; p < pixels; p++)
                {
                    uint v = 0;
                    for (var b = 0; b < bytesPerSample; b++)
                    {
                        v = (v << 8) | planes[first + b][p]; // segment 0 holds the most significant byte
                    }

                    target[p] = (bytesPerSample, image.Signed) switch
                    {
                        (1, true) => (sbyte)v,
                        (2, true) => (short)v,
                        (4, true) => (int)v,
                        _ => v,
                    };
                }

                VoxelDecoder.ApplyScaling(target, g.Slope, g.Intercept);
            }
        }
    }

    /// <summary>Decodes one PackBits segment (PS3.5 G.3.1) into exactly <paramref name="output"/>.Length bytes.</summary>
    internal static void DecodePackBits(ReadOnlySpan<byte> source, Span<byte> output, string path, int frame, int segment)
    {
        int i = 0, o = 0;
        while (o < output.Length && i < source.Length)
        {
            var header = (sbyte)source[i++];
            if (header >= 0)
            {
                var count = header + 1;
                if (i + count > source.Length)
                {
                    count = source.Length - i; // a truncated literal run; the length check below reports it
                }

                count = Math.Min(count, output.Length - o);
                source.Slice(i, count).CopyTo(output[o..]);
                i += header + 1;
                o += count;
            }
            else if (header != -128)
            {
                if (i >= source.Length)
                {
                    break;
                }

                var count = Math.Min(1 - header, output.Length - o);
                output.Slice(o, count).Fill(source[i++]);
                o += count;
            }
        }

        if (o < output.Length)
        {
            throw new VolumeFormatException(path, "RLE segment", $"frame {frame} segment {segment} decodes to {o} bytes; Rows x Columns = {output.Length}.");
        }
    }

    /// <summary>Reads the encapsulated fragments (PS3.5 A.4) and groups them into one byte array per frame.</summary>
    private static byte[][] ReadFrameFragments(DicomImage image, Stream stream)
    {
        var path = image.Path;
        var end = stream.Length;
        Span<byte> head = stackalloc byte[8];
        var fragments = new List<(long Offset, int Length)>();
        uint[] offsetTable = [];
        var first = true;
        while (true)
        {
            if (end - stream.Position < 8)
            {
                throw new VolumeFormatException(path, "PixelData", "truncated: the file ends inside the encapsulated pixel data (no sequence delimiter).");
            }

            stream.ReadExactly(head);
            var tag = ((uint)BinaryPrimitives.ReadUInt16LittleEndian(head) << 16) | BinaryPrimitives.ReadUInt16LittleEndian(head[2..]);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(head[4..]);
            if (tag == DicomTag.SequenceDelimitation)
            {
                break;
            }

            if (tag != DicomTag.Item)
            {
                throw new VolumeFormatException(path, "PixelData", $"expected a fragment item (FFFE,E000) at byte {stream.Position - 8}, found {DicomTag.Format(tag)}.");
            }

            if (length > end - stream.Position)
            {
                throw new VolumeFormatException(path, "PixelData", $"a fragment declares {length} bytes at byte {stream.Position}, but only {end - stream.Position} remain; the file is truncated or the length is wrong.");
            }

            if (first)
            {
                if (length % 4 != 0)
                {
                    throw new VolumeFormatException(path, "PixelData", $"the basic offset table is {length} bytes long; expected a multiple of 4.");
                }

                var table = new byte[length];
                stream.ReadExactly(table);
                offsetTable = new uint[length / 4];
                for (var n = 0; n < offsetTable.Length; n++)
                {
                    offsetTable[n] = BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(4 * n));
                }

                first = false;
                continue;
            }

            fragments.Add((stream.Position, (int)length));
            stream.Seek(length, SeekOrigin.Current);
        }

        var frames = image.Frames;
        List<List<int>> groups;
        if (fragments.Count == frames)
        {
            groups = [.. Enumerable.Range(0, frames).Select(n => new List<int> { n })];
        }
        else if (frames == 1)
        {
            groups = [[.. Enumerable.Range(0, fragments.Count)]];
        }
        else if (offsetTable.Length == frames)
        {
            // Fragment n starts (relative to the first fragment's item tag) at the sum of earlier fragments + 8 bytes each.
            groups = [.. Enumerable.Range(0, frames).Select(_ => new List<int>())];
            long relative = 0;
            for (var n = 0; n < fragments.Count; n++)
            {
                var frame = Array.FindLastIndex(offsetTable, o => o <= relative);
                if (frame < 0)
                {
                    throw new VolumeFormatException(path, "PixelData", "the basic offset table does not start at 0.");
                }

                groups[frame].Add(n);
                relative += 8 + fragments[n].Length;
            }
        }
        else
        {
            throw new VolumeFormatException(path, "PixelData", $"holds {fragments.Count} fragment(s) for {frames} frame(s) and no usable basic offset table; cannot tell the frames apart.");
        }

        var result = new byte[frames][];
        for (var f = 0; f < frames; f++)
        {
            var total = groups[f].Sum(n => (long)fragments[n].Length);
            var bytes = new byte[total];
            var at = 0;
            foreach (var n in groups[f])
            {
                stream.Position = fragments[n].Offset;
                stream.ReadExactly(bytes.AsSpan(at, fragments[n].Length));
                at += fragments[n].Length;
            }

            if (bytes.Length == 0)
            {
                throw new VolumeFormatException(path, "PixelData", $"frame {f} has no fragments.");
            }

            result[f] = bytes;
        }

        return result;
    }
}

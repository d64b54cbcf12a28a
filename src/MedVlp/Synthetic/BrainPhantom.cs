using MathNet.Numerics.Distributions;
using MedVlp.Volumes;

namespace MedVlp.Synthetic;

/// <summary>Draws a T1-weighted-looking brain phantom for a <see cref="SyntheticSubject"/>.</summary>
internal static class BrainPhantom
{
    // T1-like tissue intensities relative to white matter.
    private const float Skin = 0.65f;
    private const float Skull = 0.10f;
    private const float Csf = 0.12f;
    private const float GreyMatter = 0.50f;
    private const float WhiteMatter = 0.80f;
    private const float Lesion = 0.30f;
    private const double SkinMm = 4;
    private const double SkullMm = 6;

    public static Volume Render(SyntheticSubject subject, SyntheticBrainOptions options, Random random, int index)
    {
        var shape = options.Shape;
        var vs = options.VoxelSizeMm;
        var geometry = DrawGeometry(subject, options, random);
        var tissue = new float[shape.VoxelCount];
        DrawTissue(tissue, shape, vs, subject, geometry);

        // Scanner nuisance: gain, smooth multiplicative bias field, Rician noise (magnitude of complex Gaussian noise).
        var gain = 500 + (1000 * random.NextDouble());
        var noiseSd = gain * WhiteMatter * (options.NoiseLevel.Min + ((options.NoiseLevel.Max - options.NoiseLevel.Min) * random.NextDouble()));
        var biasDir = UnitVector(random);
        var biasLinear = options.BiasFieldStrength * ((2 * random.NextDouble()) - 1);
        var biasQuadratic = 0.5 * options.BiasFieldStrength * ((2 * random.NextDouble()) - 1);
        var real = new double[tissue.Length];
        var imaginary = new double[tissue.Length];
        Normal.Samples(random, real, 0, noiseSd);
        Normal.Samples(random, imaginary, 0, noiseSd);
        var half = 0.5 * (shape.X - 1) * vs;
        var data = tissue;
        var n = 0;
        for (var k = 0; k < shape.Z; k++)
        {
            var z = ((k - (0.5 * (shape.Z - 1))) * vs) / half;
            for (var j = 0; j < shape.Y; j++)
            {
                var y = ((j - (0.5 * (shape.Y - 1))) * vs) / half;
                for (var i = 0; i < shape.X; i++, n++)
                {
                    var x = ((i - (0.5 * (shape.X - 1))) * vs) / half;
                    var bias = 1 + (biasLinear * ((biasDir.X * x) + (biasDir.Y * y) + (biasDir.Z * z))) + (biasQuadratic * (((x * x) + (y * y) + (z * z)) - 1));
                    var signal = gain * bias * data[n];
                    var re = signal + real[n];
                    var im = imaginary[n];
                    data[n] = (float)Math.Sqrt((re * re) + (im * im));
                }
            }
        }

        // RAS+ voxel grid centred on the world origin.
        var affine = Affine.FromSpacing(Spacing.Isotropic(vs), -0.5 * (shape.X - 1) * vs, -0.5 * (shape.Y - 1) * vs, -0.5 * (shape.Z - 1) * vs);
        var metadata = new VolumeMetadata
        {
            Format = "memory",
            SourceDataType = VoxelDataType.Float32,
            Description = $"MedVlp synthetic brain {index} ({subject.Diagnosis.Code()})",
        };
        return new Volume(data, shape, affine, metadata: metadata);
    }

    private static (double X, double Y, double Z) UnitVector(Random random)
    {
        var x = Normal.Sample(random, 0, 1);
        var y = Normal.Sample(random, 0, 1);
        var z = Normal.Sample(random, 0, 1);
        var norm = Math.Max(1e-9, Math.Sqrt((x * x) + (y * y) + (z * z)));
        return (x / norm, y / norm, z / norm);
    }

    private sealed class Geometry
    {
        public double Ax, Ay, Az, MeanA, Scale;
        public double Cx, Cy, Cz;
        public double[] Rotation = new double[9]; // world -> head frame (row-major)
        public double SulcusWidth, SulcusDepthMm, FissureHalfWidthMm;
        public double[] FoldPhase = new double[3];
        public double FoldWavelengthMm;
        public List<(double X, double Y, double Z, double R)> Lesions = [];
    }

    private static Geometry DrawGeometry(SyntheticSubject s, SyntheticBrainOptions o, Random r)
    {
        var size = 1 + (o.HeadSizeSpread * ((2 * r.NextDouble()) - 1));
        double Jitter() => 1 + (0.03 * ((2 * r.NextDouble()) - 1));
        var g = new Geometry
        {
            Ax = 66 * size * Jitter(),
            Ay = 80 * size * Jitter(),
            Az = 70 * size * Jitter(),
            Cx = o.MaxShiftMm * ((2 * r.NextDouble()) - 1),
            Cy = o.MaxShiftMm * ((2 * r.NextDouble()) - 1),
            Cz = o.MaxShiftMm * ((2 * r.NextDouble()) - 1),
            SulcusWidth = 0.28 + (0.22 * Math.Max(0, s.Severity)),
            SulcusDepthMm = 6 + (3 * Math.Max(0, s.Severity)),
            FissureHalfWidthMm = 1.2 + (0.8 * Math.Max(0, s.Severity)),
            FoldWavelengthMm = 20 + (4 * r.NextDouble()),
        };
        g.MeanA = (g.Ax + g.Ay + g.Az) / 3;
        g.Scale = g.MeanA / 72;
        for (var a = 0; a < 3; a++)
        {
            g.FoldPhase[a] = 2 * Math.PI * r.NextDouble();
        }

        var yaw = o.MaxRotationDegrees * ((2 * r.NextDouble()) - 1) * Math.PI / 180;
        var pitch = o.MaxRotationDegrees * ((2 * r.NextDouble()) - 1) * Math.PI / 180;
        // Head frame = Rx(pitch)^T Rz(yaw)^T (world - centre).
        double cy = Math.Cos(yaw), sy = Math.Sin(yaw), cp = Math.Cos(pitch), sp = Math.Sin(pitch);
        double[] rzT = [cy, sy, 0, -sy, cy, 0, 0, 0, 1];
        double[] rxT = [1, 0, 0, 0, cp, sp, 0, -sp, cp];
        for (var row = 0; row < 3; row++)
        {
            for (var col = 0; col < 3; col++)
            {
                double sum = 0;
                for (var m = 0; m < 3; m++)
                {
                    sum += rxT[(row * 3) + m] * rzT[(m * 3) + col];
                }

                g.Rotation[(row * 3) + col] = sum;
            }
        }

        for (var l = 0; l < s.LesionCount; l++)
        {
            var dir = UnitVector(r);
            var radius = 0.25 + (0.3 * r.NextDouble());
            g.Lesions.Add((dir.X * radius * g.Ax, dir.Y * radius * g.Ay, (dir.Z * radius * g.Az) + (8 * g.Scale), 2.5 + (2.5 * r.NextDouble())));
        }

        return g;
    }

    private static void DrawTissue(float[] tissue, VolumeShape shape, double vs, SyntheticSubject s, Geometry g)
    {
        // Gyral folding: the sulci follow the zero set of a sum of three sines (a gyroid-like maze), separable per axis.
        var omega = 2 * Math.PI / g.FoldWavelengthMm;
        var sinI = new double[shape.X];
        var sinJ = new double[shape.Y];
        var sinK = new double[shape.Z];
        for (var i = 0; i < shape.X; i++)
        {
            sinI[i] = Math.Sin((omega * i * vs) + g.FoldPhase[0]);
        }

        for (var j = 0; j < shape.Y; j++)
        {
            sinJ[j] = Math.Sin((omega * j * vs) + g.FoldPhase[1]);
        }

        for (var k = 0; k < shape.Z; k++)
        {
            sinK[k] = Math.Sin((omega * k * vs) + g.FoldPhase[2]);
        }

        var sc = g.Scale;
        var v = s.VentricleScale;
        var lateralX = (6.5 + (2.0 * (v - 1))) * sc;
        var lateralA = (3.2 * v * sc, 17 * (1 + (0.2 * (v - 1))) * sc, 5.5 * v * sc);
        var third = (1.2 * v * sc, 8 * sc, 5 * sc);
        var thalamus = (6 * sc, 8 * sc, 6 * sc);
        var brainStart = SkinMm + SkullMm + s.AtrophyGapMm;
        var R = g.Rotation;
        var ox = -0.5 * (shape.X - 1) * vs;
        var oy = -0.5 * (shape.Y - 1) * vs;
        var oz = -0.5 * (shape.Z - 1) * vs;
        var n = 0;
        for (var k = 0; k < shape.Z; k++)
        {
            var wz = oz + (k * vs) - g.Cz;
            for (var j = 0; j < shape.Y; j++)
            {
                var wy = oy + (j * vs) - g.Cy;
                for (var i = 0; i < shape.X; i++, n++)
                {
                    var wx = ox + (i * vs) - g.Cx;
                    var px = (R[0] * wx) + (R[1] * wy) + (R[2] * wz);
                    var py = (R[3] * wx) + (R[4] * wy) + (R[5] * wz);
                    var pz = (R[6] * wx) + (R[7] * wy) + (R[8] * wz);
                    var q = Math.Sqrt(Sq(px / g.Ax) + Sq(py / g.Ay) + Sq(pz / g.Az));
                    var depth = (1 - q) * g.MeanA;
                    float value;
                    if (depth < 0)
                    {
                        value = 0;
                    }
                    else if (depth < SkinMm)
                    {
                        value = Skin;
                    }
                    else if (depth < SkinMm + SkullMm)
                    {
                        value = Skull;
                    }
                    else
                    {
                        var db = depth - brainStart;
                        var fold = sinI[i] + sinJ[j] + sinK[k];
                        if (db < 0)
                        {
                            value = Csf;
                        }
                        else if (Math.Abs(px) < g.FissureHalfWidthMm && pz > -12 * sc && db < 22 * sc)
                        {
                            value = Csf; // interhemispheric fissure
                        }
                        else if (db < g.SulcusDepthMm && Math.Abs(fold) < g.SulcusWidth)
                        {
                            value = Csf; // sulcus
                        }
                        else if (db < s.CortexThicknessMm + (g.SulcusDepthMm * Math.Max(0, 1 - ((Math.Abs(fold) - g.SulcusWidth) / 0.9))))
                        {
                            value = GreyMatter; // cortical ribbon, lining the sulci
                        }
                        else
                        {
                            value = DeepTissue(px, py, pz, sc, lateralX, lateralA, third, thalamus, g.Lesions);
                        }
                    }

                    tissue[n] = value;
                }
            }
        }
    }

    private static float DeepTissue(double x, double y, double z, double sc, double lateralX,
        (double X, double Y, double Z) lateral, (double X, double Y, double Z) third, (double X, double Y, double Z) thalamus,
        List<(double X, double Y, double Z, double R)> lesions)
    {
        var ax = Math.Abs(x);
        if (Inside(ax - lateralX, y - (2 * sc), z - (10 * sc), lateral) || Inside(x, y + (2 * sc), z, third))
        {
            return Csf;
        }

        foreach (var l in lesions)
        {
            if (Sq(x - l.X) + Sq(y - l.Y) + Sq(z - l.Z) < l.R * l.R)
            {
                return Lesion;
            }
        }

        return Inside(ax - (9 * sc), y + (6 * sc), z + (1 * sc), thalamus) ? GreyMatter : WhiteMatter;
    }

    private static bool Inside(double x, double y, double z, (double X, double Y, double Z) semiAxes) =>
        Sq(x / semiAxes.X) + Sq(y / semiAxes.Y) + Sq(z / semiAxes.Z) < 1;

    private static double Sq(double v) => v * v;
}

using MathNet.Numerics.Distributions;
using MedVlp.Volumes;

namespace MedVlp.Synthetic;

/// <summary>
/// Draws a chest CT phantom in Hounsfield units: body wall with subcutaneous fat, ribs, sternum, vertebrae with discs and
/// spinal canal, trachea and main bronchi, two lungs, heart, ascending and descending aorta, liver dome, and the
/// subject's findings. Anatomy is defined in patient millimetres (RAS+: x right, y anterior, z superior) and sampled
/// at every voxel's world position, so the stored orientation (LPS or RAS) never changes what is drawn.
/// </summary>
internal sealed class ChestPhantom
{
    private const float Air = -1000, Fat = -100, SoftTissue = 35, Blood = 42, Liver = 60, Fluid = 12, NodulePeak = 40;
    private const float CancellousBone = 320, CorticalBone = 750, Disc = 80, Csf = 15, Lung = -850, EmphysematousLung = -930, Bulla = -995;

    private readonly double _bodyA, _bodyB, _fatMm, _angle, _shiftX, _shiftY, _heartScale;
    private readonly Ellipsoid _rightLung, _leftLung, _heart, _liver;
    private readonly bool _emphysema, _effusionRight, _effusionLeft;
    private readonly double _effusionLevelY, _effusionTopZ;
    private readonly List<(double X, double Y, double Z, double R, float Hu)> _nodules = [], _bullae = [];
    private readonly Ellipsoid? _consolidation;

    public ChestPhantom(IReadOnlyDictionary<ChestFinding, bool> findings, Random random, List<ChestLesion> lesions)
    {
        _bodyA = 145 + (30 * random.NextDouble());
        _bodyB = 95 + (25 * random.NextDouble());
        _fatMm = 6 + (16 * random.NextDouble());
        _angle = (random.NextDouble() - 0.5) * 2 * (8 * Math.PI / 180);
        _shiftX = Normal.Sample(random, 0, 6);
        _shiftY = Normal.Sample(random, 0, 6);
        var sx = _bodyA / 160;
        var sy = _bodyB / 110;
        _rightLung = new Ellipsoid(72 * sx, -5 * sy, 20, 58 * sx, 80 * sy, 125);
        _leftLung = new Ellipsoid(-68 * sx, -5 * sy, 25, 52 * sx, 78 * sy, 120);
        _heartScale = findings[ChestFinding.Cardiomegaly] ? 1.3 + (0.15 * random.NextDouble()) : 0.95 + (0.1 * random.NextDouble());
        _heart = new Ellipsoid(-22 * sx, 28 * sy, -40, 52 * _heartScale * sx, 44 * _heartScale * sy, 50 * _heartScale);
        _liver = new Ellipsoid(35 * sx, 5 * sy, -160, 110 * sx, 85 * sy, 70);
        _emphysema = findings[ChestFinding.Emphysema];

        if (findings[ChestFinding.PleuralEffusion])
        {
            var side = random.Next(3);
            _effusionRight = side != 1;
            _effusionLeft = side != 0;
            _effusionLevelY = (-55 + (35 * random.NextDouble())) * sy;
            _effusionTopZ = -10 + (50 * random.NextDouble());
            if (_effusionRight)
            {
                lesions.Add(new ChestLesion(ChestFinding.PleuralEffusion, _rightLung.X, _effusionLevelY, _effusionTopZ, 0));
            }

            if (_effusionLeft)
            {
                lesions.Add(new ChestLesion(ChestFinding.PleuralEffusion, _leftLung.X, _effusionLevelY, _effusionTopZ, 0));
            }
        }

        if (findings[ChestFinding.LungNodule])
        {
            var count = random.Next(1, 4);
            for (var n = 0; n < count; n++)
            {
                var r = 3.5 + (4.5 * random.NextDouble());
                var (x, y, z) = PointInLungs(random, margin: 0.75);
                _nodules.Add((x, y, z, r, NodulePeak + (float)(20 * random.NextDouble())));
            }
        }

        if (_emphysema)
        {
            var count = random.Next(5, 14);
            for (var n = 0; n < count; n++)
            {
                var (x, y, z) = PointInLungs(random, margin: 0.8, upperOnly: true);
                _bullae.Add((x, y, z, 5 + (10 * random.NextDouble()), Bulla));
            }
        }

        if (findings[ChestFinding.Consolidation])
        {
            var (x, y, z) = PointInLungs(random, margin: 0.55);
            var r = 18 + (16 * random.NextDouble());
            _consolidation = new Ellipsoid(x, y, z, r, r * (0.7 + (0.4 * random.NextDouble())), r * (0.9 + (0.6 * random.NextDouble())));
        }

        foreach (var (x, y, z, r, _) in _nodules)
        {
            lesions.Add(ToWorld(ChestFinding.LungNodule, x, y, z, r));
        }

        if (_consolidation is { } c)
        {
            lesions.Add(ToWorld(ChestFinding.Consolidation, c.X, c.Y, c.Z, Math.Max(c.A, Math.Max(c.B, c.C))));
        }

        for (var n = 0; n < lesions.Count; n++)
        {
            if (lesions[n].Finding == ChestFinding.PleuralEffusion)
            {
                lesions[n] = ToWorld(ChestFinding.PleuralEffusion, lesions[n].X, lesions[n].Y, lesions[n].Z, 0);
            }
        }
    }

    /// <summary>The cardiothoracic ratio of the drawn anatomy (heart width over inner chest width), > 0.5 is cardiomegaly.</summary>
    public double CardiothoracicRatio => (2 * _heart.A) / (2 * (_bodyA - _fatMm - 12));

    /// <summary>Renders the phantom on a grid with the given voxel-to-RAS affine.</summary>
    public float[] Render(VolumeShape shape, Affine affine, double noiseSd, int noiseSeed)
    {
        var data = new float[shape.VoxelCount];
        var cos = Math.Cos(-_angle);
        var sin = Math.Sin(-_angle);
        Parallel.For(0, shape.Z, k =>
        {
            var noise = new Random(SyntheticBrainDataset.MixSeed(noiseSeed, k));
            var n = (long)k * shape.X * shape.Y;
            for (var j = 0; j < shape.Y; j++)
            {
                for (var i = 0; i < shape.X; i++, n++)
                {
                    var (wx, wy, wz) = affine.Apply(i, j, k);
                    var dx = wx - _shiftX;
                    var dy = wy - _shiftY;
                    var hu = Sample((cos * dx) - (sin * dy), (sin * dx) + (cos * dy), wz);
                    data[n] = hu <= Air ? Air : hu + (float)(noiseSd * Normal.Sample(noise, 0, 1));
                }
            }
        });
        return data;
    }

    private float Sample(double x, double y, double z)
    {
        var body = Sq(x / _bodyA) + Sq(y / _bodyB);
        if (body > 1)
        {
            return Air;
        }

        var innerA = _bodyA - _fatMm;
        var innerB = _bodyB - _fatMm;
        var inner = Sq(x / innerA) + Sq(y / innerB);
        if (inner > 1)
        {
            return Fat;
        }

        if (Bone(x, y, z, innerA, innerB) is { } bone)
        {
            return bone;
        }

        // Trachea above the carina, main bronchi below it.
        if (z > 45 && Sq(x) + Sq(y - 5) < Sq(9))
        {
            return Air;
        }

        if (z is > 20 and <= 45 && (SegmentDistance(x, y, z, 0, 5, 45, 35, 0, 22) < 6 || SegmentDistance(x, y, z, 0, 5, 45, -33, 0, 24) < 6))
        {
            return Air;
        }

        if (_heart.Contains(x, y, z))
        {
            return Blood;
        }

        var sx = _bodyA / 160;
        var sy = _bodyB / 110;
        if ((z < 55 && Sq(x + (25 * sx)) + Sq(y + _bodyB - 62) < Sq(12)) || (z is > -20 and < 55 && Sq(x + (5 * sx)) + Sq(y - (35 * sy)) < Sq(15)))
        {
            return Blood; // descending and ascending aorta
        }

        var right = _rightLung.Contains(x, y, z);
        if (right || _leftLung.Contains(x, y, z))
        {
            return LungValue(x, y, z, right);
        }

        return _liver.Contains(x, y, z) ? Liver : SoftTissue;
    }

    private float LungValue(double x, double y, double z, bool right)
    {
        if ((right ? _effusionRight : _effusionLeft) && z < _effusionTopZ && y < _effusionLevelY + (0.15 * (z - _effusionTopZ)))
        {
            return Fluid;
        }

        foreach (var (nx, ny, nz, r, hu) in _nodules)
        {
            var d2 = Sq(x - nx) + Sq(y - ny) + Sq(z - nz);
            if (d2 < r * r)
            {
                return hu;
            }
        }

        if (_consolidation is { } c && c.Contains(x, y, z))
        {
            return 25;
        }

        foreach (var (bx, by, bz, r, hu) in _bullae)
        {
            if (Sq(x - bx) + Sq(y - by) + Sq(z - bz) < r * r)
            {
                return hu;
            }
        }

        // A faint vascular texture, denser towards the hila.
        var hilum = Math.Sqrt(Sq(x - (right ? 35 : -35)) + Sq(y) + Sq(z - 10));
        var vessels = 45 * Math.Exp(-hilum / 50) * (1 + Math.Sin(x * 0.35) * Math.Sin(y * 0.31) * Math.Sin(z * 0.27));
        return (float)((_emphysema ? EmphysematousLung : Lung) + vessels);
    }

    private static float? Bone(double x, double y, double z, double innerA, double innerB)
    {
        // Vertebral body (cortical shell, cancellous core, a disc every 26 mm) and the spinal canal behind it.
        var vy = -innerB + 40;
        var rv = Math.Sqrt(Sq(x) + Sq(y - vy));
        if (rv < 17)
        {
            var phase = ((z % 26) + 26) % 26;
            return phase < 5 ? Disc : rv > 14.5 ? CorticalBone : CancellousBone;
        }

        if (Sq(x) + Sq(y - (vy - 22)) < Sq(7))
        {
            return Csf;
        }

        if (Math.Abs(x) < 6 && Math.Abs(y - (vy - 22)) < 14 && Sq(x) + Sq(y - (vy - 22)) >= Sq(7))
        {
            return CorticalBone; // posterior arch around the canal
        }

        // Sternum: anterior midline plate.
        if (Math.Abs(x) < 14 && y > innerB - 14 && z is > -90 and < 90)
        {
            return CorticalBone;
        }

        // Ribs: bands just inside the chest wall, sloping down anteriorly, 28 mm apart, absent across the front.
        var rr = Math.Sqrt(Sq(x / innerA) + Sq(y / innerB));
        if (rr is > 0.9 and < 0.985 && z is > -130 and < 125)
        {
            var frontal = y / innerB;
            if (!(frontal > 0.75 && Math.Abs(x / innerA) < 0.45))
            {
                var zEff = z + (20 * frontal);
                var phase = ((zEff % 28) + 28) % 28;
                if (phase < 9)
                {
                    return phase is < 2 or > 7 ? CorticalBone : CancellousBone + 150;
                }
            }
        }

        return null;
    }

    private (double X, double Y, double Z) PointInLungs(Random random, double margin, bool upperOnly = false)
    {
        for (var attempt = 0; ; attempt++)
        {
            var lung = random.NextDouble() < 0.5 ? _rightLung : _leftLung;
            var u = (2 * random.NextDouble()) - 1;
            var v = (2 * random.NextDouble()) - 1;
            var w = upperOnly ? random.NextDouble() : (2 * random.NextDouble()) - 1;
            if ((u * u) + (v * v) + (w * w) > 1)
            {
                continue;
            }

            var (x, y, z) = (lung.X + (margin * lung.A * u), lung.Y + (margin * lung.B * v), lung.Z + (margin * lung.C * w));
            if (!_heart.Contains(x, y, z) || attempt > 200)
            {
                return (x, y, z);
            }
        }
    }

    private ChestLesion ToWorld(ChestFinding finding, double x, double y, double z, double r) =>
        new(finding, (Math.Cos(_angle) * x) - (Math.Sin(_angle) * y) + _shiftX, (Math.Sin(_angle) * x) + (Math.Cos(_angle) * y) + _shiftY, z, r);

    private static double SegmentDistance(double x, double y, double z, double ax, double ay, double az, double bx, double by, double bz)
    {
        var (dx, dy, dz) = (bx - ax, by - ay, bz - az);
        var t = Math.Clamp((((x - ax) * dx) + ((y - ay) * dy) + ((z - az) * dz)) / ((dx * dx) + (dy * dy) + (dz * dz)), 0, 1);
        return Math.Sqrt(Sq(x - ax - (t * dx)) + Sq(y - ay - (t * dy)) + Sq(z - az - (t * dz)));
    }

    private static double Sq(double v) => v * v;

    private readonly record struct Ellipsoid(double X, double Y, double Z, double A, double B, double C)
    {
        public bool Contains(double x, double y, double z) => Sq((x - X) / A) + Sq((y - Y) / B) + Sq((z - Z) / C) <= 1;
    }
}

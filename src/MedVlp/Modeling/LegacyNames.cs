// VolumeTransformer.cs (owned by the building-blocks work) still says VolumeEncoderConfig; this assembly-local alias
// keeps it compiling until that file adopts the new name. It is not part of the public API.
global using VolumeEncoderConfig = MedVlp.Modeling.VolumeTransformerConfig;

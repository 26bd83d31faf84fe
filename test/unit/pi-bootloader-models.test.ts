// The Pi 3B+ and Pi 5 sides of the bootloader stand-in (server/lab/pi/), held to
// the Raspberry Pi documentation and captures, and decoded by bootfarm's own DHCP
// codec; and the stand-in and bootfarm agree on each model's files: the kernel the
// rendered config.txt names is the one the stand-in asks for, the device tree the
// stand-in asks for is the one `config check` wants in the image.
import { describe, expect, it } from 'vitest';
import { decodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import { readClientMachineId, readParameterRequestList, readVendorClass } from '../../server/dhcp/codec/readers.js';
import { identifyClient } from '../../server/dhcp/codec/identity.js';
import { buildDiscover } from '../../server/lab/pi/dhcp-build.js';
import { makeIdentity, PI_MODELS, type PiModel } from '../../server/lab/pi/model.js';
import { defaultRequired } from '../../server/lab/pi/options.js';
import { parseConfigTxt } from '../../server/lab/pi/config-txt.js';
import { buildRrq, checkOack } from '../../server/lab/pi/tftp-packets.js';
import { piBootSet } from '../../server/boot/files/pi-models.js';
import { parseConfig } from '../../server/config/load.js';
import { findConfigNode, renderArtefact } from '../../server/cli/render.js';
import { stringify } from 'yaml';
import { parseLabNodes, scriptedPiModel, specFor } from '../../server/lab/lab-nodes.js';

function decodeOk(buf: Buffer): DhcpPacket {
  const r = decodePacket(buf);
  if (!r.ok) throw new Error(r.reason);
  return r.packet;
}

describe('the Pi 3B+ ROM DISCOVER', () => {
  // raspberrypi/firmware#1605: a 3B+ with MAC b8:27:eb:6c:4c:16, serial b66c4c16.
  const id = makeIdentity('b8:27:eb:6c:4c:16', 'b66c4c16', 3);
  const discover = buildDiscover(id, 0x26f30339, { broadcast: false });
  const packet = decodeOk(discover);

  it("asks for boot-net.adoc's capture's options in its order, with flags 0", () => {
    expect(readParameterRequestList(packet.options)).toEqual([43, 60, 67, 128, 129, 130, 131, 132, 133, 134, 135, 66]);
    expect(readVendorClass(packet.options)).toBe('PXEClient:Arch:00000:UNDI:002001');
    expect(discover.readUInt16BE(10)).toBe(0);
  });

  it('option 97 is 00 and the serial four times, as the captured 3B+ sends it (00:16:4c:6c:b6:16:4c:...)', () => {
    expect(readClientMachineId(packet.options)?.toString('hex')).toBe('164c6cb6'.repeat(4));
  });

  it('bootfarm sees a Raspberry Pi 3 with serial b66c4c16', () => {
    const identity = identifyClient(packet);
    expect(identity.firmware).toBe('raspberry-pi');
    expect(identity.raspberryPi).toEqual({ model: 3, serial: 'b66c4c16', boardRevision: undefined });
  });
});

describe('TFTP reads of the Pi 3 ROM', () => {
  it('carry no options, and an OACK to them is refused (RFC 2347)', () => {
    expect(buildRrq('bootcode.bin', [])).toEqual(Buffer.from('\0\x01bootcode.bin\0octet\0', 'latin1'));
    expect(checkOack([], [['tsize', '52000']])).toEqual({
      ok: false,
      reason: 'OACK carries option "tsize" that was not requested (RFC 2347)',
    });
  });
});

describe('the stand-in and bootfarm agree on each model', () => {
  const render = (mac: string, piModel: PiModel) => {
    const config = parseConfig(
      stringify({
        server: { address: '10.9.0.1', stateDir: '/tmp/unused' },
        dhcp: { mode: 'proxy' },
        nodes: [{ mac, hostname: 'pi', piSerial: '1234abcd', piModel }],
      }),
      'site.yaml',
    );
    return renderArtefact(config, findConfigNode(config, 'pi'), 'config.txt');
  };

  it.each([3, 4, 5] as const)('Pi %i: kernel and device tree', (model) => {
    const set = piBootSet(model, 'arm64');
    if ('refused' in set) throw new Error(set.refused);
    const parsed = parseConfigTxt(render('dc:a6:32:01:02:03', model), model);
    expect(parsed.kernel).toBe(set.kernel);
    expect(parsed.arm64bit).toBe(true);
    expect(parsed.deviceTree).toBeUndefined();
    expect(PI_MODELS[model].dtb).toBe(set.dtb);
    // The firmware the stand-in requires is what bootfarm checks the image for.
    for (const f of defaultRequired(model).filter((r) => /\.(elf|dat)$/.test(r))) expect(set.firmware).toContain(f);
  });
});

describe('lab kinds pi3, pi4 and pi5', () => {
  it('each runs the scripted bootloader of its own model, with a MAC and serial of its own', () => {
    const specs = parseLabNodes('pi3,pi4,pi5*2').map((kind, i, all) => specFor(kind, all.slice(0, i).filter((k) => k === kind).length));
    expect(specs.map((s) => [s.hostname, s.mac, s.piSerial, scriptedPiModel(s)])).toEqual([
      ['lab-pi3', 'b8:27:eb:b0:00:14', 'b0a7f003', 3],
      ['lab-pi4', 'dc:a6:32:b0:00:04', 'b0a7f004', 4],
      ['lab-pi5', '2c:cf:67:b0:00:15', 'b0a7f005', 5],
      ['lab-pi5-2', '2c:cf:67:b0:b1:15', 'b0a7f006', 5],
    ]);
    expect(scriptedPiModel(specFor('arm64-uefi', 0))).toBeUndefined();
  });
});

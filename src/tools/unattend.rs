//! `autounattend.xml` for a hands-free Windows 11 install, and the
//! where the VirtIO drivers it loads sit on the virtio-win ISO.
//!
//! Windows Setup finds `autounattend.xml` at the root of any drive, and
//! loads every driver under a `$WinPEDriver$` folder at the root of any
//! drive, so nothing here depends on drive letters.

/// What the answer file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub computer_name: String,
    pub username: String,
    pub password: String,
    /// Keep Windows from turning on device encryption (BitLocker).
    pub no_bitlocker: bool,
    /// The image of the ISO's install.wim that Setup installs, by its
    /// index (`/IMAGE/INDEX`): the one bkt picked from what that very ISO
    /// lists, so that an edition renamed in a new release (25H2 renamed
    /// Pro) cannot make Setup stop and ask, as a name could.
    pub image_index: u32,
}

/// Passwords in an answer file are not plain text: base64 of the UTF-16LE
/// text followed by the element name (`Password`), as Windows'
/// System Image Manager writes them. It hides the password from a glance,
/// not from an attacker: the ISO stays 0600 and is deleted after install.
pub fn encode_password(password: &str, element: &str) -> String {
    let bytes: Vec<u8> = format!("{password}{element}")
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Escape text for an XML element.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COMPONENT: &str = r#"processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS""#;

/// The guest tools installer is on the answer ISO and on the virtio-win
/// ISO; run the first found, whatever its drive letter.
const INSTALL_GUEST_TOOLS: &str = r#"cmd /c for %d in (D E F G H I J K L) do if exist %d:\virtio-win-guest-tools.exe (start /wait "" %d:\virtio-win-guest-tools.exe /install /quiet /norestart &amp; exit /b 0)"#;

/// The whole answer file.
pub fn autounattend(a: &Answers) -> String {
    let c = COMPONENT;
    let user = xml(&a.username);
    let password = encode_password(&a.password, "Password");
    let bitlocker = if a.no_bitlocker {
        format!(
            r#"
    <component name="Microsoft-Windows-SecureStartup-FilterDriver" {c}>
      <PreventDeviceEncryption>true</PreventDeviceEncryption>
    </component>
    <component name="Microsoft-Windows-EnhancedStorage-Adm" {c}>
      <TCGSecurityActivationDisabled>1</TCGSecurityActivationDisabled>
    </component>"#
        )
    } else {
        String::new()
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<!-- Written by bkt: vm create, unattended. -->
<unattend xmlns="urn:schemas-microsoft-com:unattend" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
  <settings pass="windowsPE">
    <component name="Microsoft-Windows-International-Core-WinPE" {c}>
      <SetupUILanguage><UILanguage>en-US</UILanguage></SetupUILanguage>
      <InputLocale>en-US</InputLocale>
      <SystemLocale>en-US</SystemLocale>
      <UILanguage>en-US</UILanguage>
      <UserLocale>en-US</UserLocale>
    </component>
    <component name="Microsoft-Windows-Setup" {c}>
      <DiskConfiguration>
        <Disk wcm:action="add">
          <DiskID>0</DiskID>
          <WillWipeDisk>true</WillWipeDisk>
          <CreatePartitions>
            <CreatePartition wcm:action="add"><Order>1</Order><Type>EFI</Type><Size>260</Size></CreatePartition>
            <CreatePartition wcm:action="add"><Order>2</Order><Type>MSR</Type><Size>16</Size></CreatePartition>
            <CreatePartition wcm:action="add"><Order>3</Order><Type>Primary</Type><Extend>true</Extend></CreatePartition>
          </CreatePartitions>
          <ModifyPartitions>
            <ModifyPartition wcm:action="add"><Order>1</Order><PartitionID>1</PartitionID><Format>FAT32</Format><Label>System</Label></ModifyPartition>
            <ModifyPartition wcm:action="add"><Order>2</Order><PartitionID>2</PartitionID></ModifyPartition>
            <ModifyPartition wcm:action="add"><Order>3</Order><PartitionID>3</PartitionID><Format>NTFS</Format><Label>Windows</Label><Letter>C</Letter></ModifyPartition>
          </ModifyPartitions>
        </Disk>
      </DiskConfiguration>
      <ImageInstall>
        <OSImage>
          <InstallFrom>
            <MetaData wcm:action="add"><Key>/IMAGE/INDEX</Key><Value>{image}</Value></MetaData>
          </InstallFrom>
          <InstallTo><DiskID>0</DiskID><PartitionID>3</PartitionID></InstallTo>
        </OSImage>
      </ImageInstall>
      <UserData>
        <ProductKey><Key></Key><WillShowUI>OnError</WillShowUI></ProductKey>
        <AcceptEula>true</AcceptEula>
      </UserData>
    </component>
  </settings>
  <settings pass="specialize">
    <component name="Microsoft-Windows-Shell-Setup" {c}>
      <ComputerName>{computer}</ComputerName>
    </component>
    <component name="Microsoft-Windows-TerminalServices-LocalSessionManager" {c}>
      <fDenyTSConnections>false</fDenyTSConnections>
    </component>
    <component name="Microsoft-Windows-TerminalServices-RDP-WinStationExtensions" {c}>
      <UserAuthentication>1</UserAuthentication>
    </component>
    <component name="Microsoft-Windows-Deployment" {c}>
      <RunSynchronous>
        <RunSynchronousCommand wcm:action="add">
          <Order>1</Order>
          <Description>RemoteApp: any program, not only listed ones (bkt vm run)</Description>
          <Path>{allow_list}</Path>
        </RunSynchronousCommand>
        <RunSynchronousCommand wcm:action="add">
          <Order>2</Order>
          <Description>RemoteApp: unlisted programs allowed by policy (bkt vm run)</Description>
          <Path>{unlisted}</Path>
        </RunSynchronousCommand>
      </RunSynchronous>
    </component>
    <component name="Networking-MPSSVC-Svc" {c}>
      <FirewallGroups>
        <FirewallGroup wcm:action="add" wcm:keyValue="RemoteDesktop">
          <Active>true</Active>
          <Group>@FirewallAPI.dll,-28752</Group>
          <Profile>all</Profile>
        </FirewallGroup>
      </FirewallGroups>
    </component>{bitlocker}
  </settings>
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-International-Core" {c}>
      <InputLocale>en-US</InputLocale>
      <SystemLocale>en-US</SystemLocale>
      <UILanguage>en-US</UILanguage>
      <UserLocale>en-US</UserLocale>
    </component>
    <component name="Microsoft-Windows-Shell-Setup" {c}>
      <OOBE>
        <HideEULAPage>true</HideEULAPage>
        <HideOEMRegistrationScreen>true</HideOEMRegistrationScreen>
        <HideOnlineAccountScreens>true</HideOnlineAccountScreens>
        <HideWirelessSetupInOOBE>true</HideWirelessSetupInOOBE>
        <ProtectYourPC>3</ProtectYourPC>
      </OOBE>
      <UserAccounts>
        <LocalAccounts>
          <LocalAccount wcm:action="add">
            <Name>{user}</Name>
            <DisplayName>{user}</DisplayName>
            <Group>Administrators</Group>
            <Password><Value>{password}</Value><PlainText>false</PlainText></Password>
          </LocalAccount>
        </LocalAccounts>
      </UserAccounts>
      <AutoLogon>
        <Enabled>true</Enabled>
        <LogonCount>1</LogonCount>
        <Username>{user}</Username>
        <Password><Value>{password}</Value><PlainText>false</PlainText></Password>
      </AutoLogon>
      <FirstLogonCommands>
        <SynchronousCommand wcm:action="add">
          <Order>1</Order>
          <Description>Install the VirtIO guest tools (SPICE agent, qemu-ga)</Description>
          <CommandLine>{tools}</CommandLine>
        </SynchronousCommand>
      </FirstLogonCommands>
    </component>
  </settings>
</unattend>
"#,
        computer = xml(&a.computer_name),
        image = a.image_index,
        tools = INSTALL_GUEST_TOOLS,
        allow_list = xml(&reg_dword(REMOTEAPP_KEYS[0])),
        unlisted = xml(&reg_dword(REMOTEAPP_KEYS[1])),
    )
}

/// The registry values that let RDP RemoteApp start any program (`bkt vm
/// run`), as (key, DWORD value set to 1); Network Level Authentication is
/// untouched. The same in the answer file and in enable-rdp.ps1.
pub const REMOTEAPP_KEYS: [(&str, &str); 2] = [
    (
        r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Terminal Server\TSAppAllowList",
        "fDisabledAllowList",
    ),
    (
        r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services",
        "fAllowUnlistedRemotePrograms",
    ),
];

/// `reg add` setting one of [`REMOTEAPP_KEYS`] (creating the key when
/// missing, keeping what else it holds; again is harmless).
fn reg_dword((key, name): (&str, &str)) -> String {
    format!(r#"reg add "{key}" /v {name} /t REG_DWORD /d 1 /f"#)
}

/// The driver folders taken from the virtio-win ISO, by its layout:
/// storage (virtio-blk, virtio-scsi) and network.
pub const DRIVERS: &[&str] = &["viostor", "vioscsi", "NetKVM"];

/// Where a driver's folder is on the virtio-win ISO.
pub fn driver_dir(driver: &str) -> String {
    format!("/{driver}/w11/amd64")
}

/// Windows names a Windows computer at most 15 characters, no dots.
pub fn computer_name(vm: &str) -> String {
    let n: String = vm
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(15)
        .collect();
    if n.chars().all(|c| c.is_ascii_digit()) {
        format!("W{}", &n[..n.len().min(14)])
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(no_bitlocker: bool) -> Answers {
        Answers {
            computer_name: "windows".into(),
            username: "anna".into(),
            password: "S3cret&<pw>".into(),
            no_bitlocker,
            image_index: 6,
        }
    }

    #[test]
    fn password_encoding_matches_windows() {
        // "abcPassword" as UTF-16LE, base64: what Windows SIM writes.
        assert_eq!(
            encode_password("abc", "Password"),
            "YQBiAGMAUABhAHMAcwB3AG8AcgBkAA=="
        );
    }

    #[test]
    fn answer_file_is_well_formed_and_complete() {
        let text = autounattend(&answers(false));
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let passes: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("settings"))
            .filter_map(|n| n.attribute("pass"))
            .collect();
        assert_eq!(passes, ["windowsPE", "specialize", "oobeSystem"]);
        let components = |pass: &str| -> Vec<String> {
            doc.descendants()
                .filter(|n| n.has_tag_name("settings") && n.attribute("pass") == Some(pass))
                .flat_map(|s| s.children().filter(|c| c.has_tag_name("component")))
                .filter_map(|c| c.attribute("name").map(String::from))
                .collect()
        };
        assert!(components("windowsPE").contains(&"Microsoft-Windows-Setup".to_string()));
        let spec = components("specialize");
        for c in [
            "Microsoft-Windows-TerminalServices-LocalSessionManager",
            "Microsoft-Windows-TerminalServices-RDP-WinStationExtensions",
            "Networking-MPSSVC-Svc",
        ] {
            assert!(spec.contains(&c.to_string()), "{c}");
        }
        let text_of = |tag: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .map(String::from)
        };
        assert_eq!(text_of("fDenyTSConnections").as_deref(), Some("false"));
        // The image by the index read from the ISO, not by a name.
        assert_eq!(text_of("Key").as_deref(), Some("/IMAGE/INDEX"));
        assert_eq!(text_of("Value").as_deref(), Some("6"));
        assert_eq!(text_of("UserAuthentication").as_deref(), Some("1"));
        assert_eq!(text_of("Group").as_deref(), Some("@FirewallAPI.dll,-28752"));
        assert_eq!(text_of("HideOnlineAccountScreens").as_deref(), Some("true"));
        assert!(components("specialize").contains(&"Microsoft-Windows-Deployment".to_string()));
        let paths: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("Path"))
            .filter_map(|n| n.text().map(String::from))
            .collect();
        assert_eq!(
            paths,
            [
                r#"reg add "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Terminal Server\TSAppAllowList" /v fDisabledAllowList /t REG_DWORD /d 1 /f"#,
                r#"reg add "HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services" /v fAllowUnlistedRemotePrograms /t REG_DWORD /d 1 /f"#,
            ]
        );
        // GPT for UEFI: EFI, MSR, Windows.
        let types: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("Type"))
            .filter_map(|n| n.text().map(String::from))
            .collect();
        assert_eq!(types, ["EFI", "MSR", "Primary"]);
        // The password never appears in clear, even escaped.
        assert!(!text.contains("S3cret"));
        let encoded = encode_password("S3cret&<pw>", "Password");
        assert_eq!(text.matches(&encoded).count(), 2, "account and autologon");
        assert!(!text.contains("PreventDeviceEncryption"));
        assert!(text.contains(r"start /wait &quot;&quot; %d:\virtio-win-guest-tools.exe /install /quiet /norestart") || text.contains(r#"start /wait "" %d:\virtio-win-guest-tools.exe"#));
    }

    #[test]
    fn no_bitlocker_adds_the_device_encryption_switches() {
        let text = autounattend(&answers(true));
        roxmltree::Document::parse(&text).unwrap();
        assert!(text.contains("<PreventDeviceEncryption>true</PreventDeviceEncryption>"));
        assert!(text.contains("<TCGSecurityActivationDisabled>1</TCGSecurityActivationDisabled>"));
    }

    #[test]
    fn names_are_escaped_and_bounded() {
        let mut a = answers(false);
        a.username = "Anna & <Co>".into();
        let text = autounattend(&a);
        roxmltree::Document::parse(&text).unwrap();
        assert!(text.contains("<Name>Anna &amp; &lt;Co&gt;</Name>"));
        assert_eq!(computer_name("my.windows_vm-2026"), "my-windows-vm-2");
        assert_eq!(computer_name("12345"), "W12345");
    }

    #[test]
    fn driver_folders() {
        assert_eq!(driver_dir("viostor"), "/viostor/w11/amd64");
    }
}
